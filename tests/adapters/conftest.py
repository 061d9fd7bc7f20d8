"""Fixtures for the adapter tests: mocked sources, a loopback token server, a real sekmet."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

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
from tests.sekmet import SekmetFolder, free_port, sekmet_command

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


@pytest.fixture(scope="module")
def sekmet() -> Iterator[Sekmet]:
    """A seeded sekmet-fhir server on 127.0.0.1, killed when the module ends."""
    command = sekmet_command()
    if command is None:
        pytest.skip("the sekmet command (sekmet-fhir) is not installed")
    with tempfile.TemporaryDirectory(prefix="sekmet-") as folder:
        server = SekmetFolder(command, Path(folder), free_port(), "sekmet-test-token")
        server.write_settings()
        # Three patients with sekmet's own random MRNs, so identifier search has to choose.
        server.run("seed", "--count", "3", "--config", "settings.yaml")
        tolvan_id, observations = server.admit_test_person(TOLVAN.value)
        short_person = make_person("19850317", "042")
        short_form = f"{short_person.value[2:8]}-{short_person.value[8:]}"
        short = server.workflow("adt.register_patient", mrn=short_form)
        with server.serving():
            yield Sekmet(
                base_url=server.base_url,
                token=server.token,
                tolvan_id=tolvan_id,
                tolvan_observations=observations,
                tolvan_conditions=1,
                short_form_person=short_person,
                short_form_id=short["patient"]["id"],
            )
