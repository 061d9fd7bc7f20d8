"""Fixtures for the adapter tests: mocked sources, a loopback token server, a real sekmet."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import respx
from joserfc.jwk import ECKey, RSAKey

from simregions.server import RunningServer, start_in_thread
from tests.adapters.adapter_fakes import (
    TOLVAN,
    KeyFiles,
    Sekmet,
    TokenServer,
    TokenServerState,
    make_person,
    token_server_app,
)

# -- respx-backed client -------------------------------------------------------------


@pytest.fixture
def router() -> respx.Router:
    """Routes for the mocked source; an unrouted request fails the test."""
    return respx.Router(assert_all_mocked=True, assert_all_called=False)


@pytest.fixture
async def mock_client(router: respx.Router) -> AsyncIterator[httpx.AsyncClient]:
    """An AsyncClient whose transport is the respx router (no global patching)."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as client:
        yield client


# -- keys and the loopback SMART token server ----------------------------------------


@pytest.fixture(scope="session")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    """One RSA and one EC P-384 key pair, as PEM and JWK files (generated once)."""
    folder = tmp_path_factory.mktemp("keys")
    rsa = RSAKey.generate_key(2048)
    ec = ECKey.generate_key("P-384", parameters={"kid": "ec-key-1"})
    rsa_pem = folder / "client.pem"
    rsa_pem.write_bytes(rsa.as_pem(private=True))
    ec_jwk = folder / "client.jwk.json"
    ec_jwk.write_bytes(orjson.dumps(ec.as_dict(private=True)))
    public_pem = folder / "public.pem"
    public_pem.write_bytes(rsa.as_pem(private=False))
    return KeyFiles(rsa, ec, RSAKey.generate_key(2048), rsa_pem, ec_jwk, public_pem)


@pytest.fixture(scope="module")
def _token_server_running() -> Iterator[tuple[RunningServer, TokenServerState]]:
    state = TokenServerState()
    running = start_in_thread(token_server_app(state))
    try:
        yield running, state
    finally:
        running.stop()


@pytest.fixture
def token_server(
    _token_server_running: tuple[RunningServer, TokenServerState], key_files: KeyFiles
) -> TokenServer:
    """The loopback token server with fresh state for this test (RSA key, kid-1)."""
    running, state = _token_server_running
    state.reset(f"{running.url}/token", RSAKey.import_key(key_files.rsa.as_dict(private=False)))
    return TokenServer(running.url, state)


# -- sekmet: an independent FHIR R4 server -------------------------------------------


def _sekmet_command() -> str | None:
    beside = Path(sys.executable).with_name("sekmet")
    if beside.exists():
        return str(beside)
    return shutil.which("sekmet")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:3])} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def _workflow(sekmet: str, cwd: Path, env: dict[str, str], key: str, **args: str) -> Any:
    argv = [sekmet, "workflow", "run", key, "--config", "settings.yaml"]
    for name, value in args.items():
        argv += ["--arg", f"{name}={value}"]
    return orjson.loads(_run(argv, cwd, env))


@pytest.fixture(scope="module")
def sekmet() -> Iterator[Sekmet]:
    """A seeded sekmet-fhir server on 127.0.0.1, killed when the module ends."""
    command = _sekmet_command()
    if command is None:
        pytest.skip("the sekmet command (sekmet-fhir) is not installed")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/fhir"
    token = "sekmet-test-token"
    with tempfile.TemporaryDirectory(prefix="sekmet-") as folder:
        cwd = Path(folder)
        # Identifiers: sekmet writes its "MRN" under this system, so registering with a
        # personnummer as MRN gives a Patient that a Swedish source would hold.
        (cwd / "settings.yaml").write_text(
            "\n".join(
                [
                    "host: 127.0.0.1",
                    f"port: {port}",
                    f"base_url: {base_url}",
                    "server_auth: {types: [bearer], tokens: [" + token + "]}",
                    "simulator: {enabled: false}",
                    "log_inbound: false",
                    "identifiers: {mrn: 'http://electronichealth.se/identifier/personnummer'}",
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEKMET_")}
        # Three patients with sekmet's own random MRNs, so identifier search has to choose.
        _run([command, "seed", "--count", "3", "--config", "settings.yaml"], cwd, env)
        tolvan = _workflow(
            command, cwd, env, "adt.register_patient",
            mrn=TOLVAN.value, family="Tolvansson", given="Tolvan",
        )  # fmt: skip
        tolvan_id = tolvan["patient"]["id"]
        short_person = make_person("19850317", "042")
        short_form = f"{short_person.value[2:8]}-{short_person.value[8:]}"
        short = _workflow(command, cwd, env, "adt.register_patient", mrn=short_form)
        vitals = _workflow(command, cwd, env, "clinical.vitals", patient=tolvan_id)
        _workflow(command, cwd, env, "clinical.condition", patient=tolvan_id)
        _workflow(command, cwd, env, "adt.admit", patient=tolvan_id)

        log_path = cwd / "serve.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [command, "serve", "--config", "settings.yaml"],
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for_metadata(base_url, process, log_path)
            yield Sekmet(
                base_url=base_url,
                token=token,
                tolvan_id=tolvan_id,
                tolvan_observations=len(vitals["observations"]),
                tolvan_conditions=1,
                short_form_person=short_person,
                short_form_id=short["patient"]["id"],
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _wait_for_metadata(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sekmet exited early:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{base_url}/metadata", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("sekmet did not answer /metadata within 20 s")
