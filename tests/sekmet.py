"""sekmet-fhir, an independent FHIR R4 server (a dev dependency), run on loopback for the
integration tests: its command, its settings, seeding through its workflows, and serving.

Its defaults are unsafe for tests (it binds every interface and its simulator fulfils
orders by itself): every run here binds 127.0.0.1 with the simulator off and a bearer
token, in a folder of its own.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

#: sekmet writes its "MRN" under this system, so registering a personnummer as the MRN
#: gives a Patient that a Swedish source would hold.
MRN_SYSTEM = "http://electronichealth.se/identifier/personnummer"


def sekmet_command() -> str | None:
    """The ``sekmet`` command beside this Python, or on the PATH; None if not installed."""
    beside = Path(sys.executable).with_name("sekmet")
    if beside.exists():
        return str(beside)
    return shutil.which("sekmet")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class SekmetFolder:
    """One sekmet installation: its working folder (settings and data) and address."""

    command: str
    cwd: Path
    port: int
    token: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("SEKMET_")}

    def write_settings(self) -> None:
        lines = [
            "host: 127.0.0.1",
            f"port: {self.port}",
            f"base_url: {self.base_url}",
            "server_auth: {types: [bearer], tokens: [" + self.token + "]}",
            "simulator: {enabled: false}",
            "log_inbound: false",
            f"identifiers: {{mrn: '{MRN_SYSTEM}'}}",
        ]
        (self.cwd / "settings.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def run(self, *args: str) -> str:
        """One sekmet command in the folder; its stdout (RuntimeError if it fails)."""
        done = subprocess.run(
            [self.command, *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"sekmet {' '.join(args[:2])} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def workflow(self, key: str, **args: str) -> Any:
        """Run one of sekmet's hospital workflows; its JSON result."""
        argv = ["workflow", "run", key, "--config", "settings.yaml"]
        for name, value in args.items():
            argv += ["--arg", f"{name}={value}"]
        return orjson.loads(self.run(*argv))

    def admit_test_person(self, personnummer: str) -> tuple[str, int]:
        """Register the person (their identity number as the MRN), then record vital signs,
        a condition and an admission by the facility's staff: their Patient id, and how
        many Observations the vitals made."""
        patient = self.workflow(
            "adt.register_patient", mrn=personnummer, family="Tolvansson", given="Tolvan"
        )["patient"]["id"]
        vitals = self.workflow("clinical.vitals", patient=patient)
        self.workflow("clinical.condition", patient=patient)
        self.workflow("adt.admit", patient=patient)
        return str(patient), len(vitals["observations"])

    @contextmanager
    def serving(self) -> Iterator[subprocess.Popen[bytes]]:
        """``sekmet serve`` until the block ends, once it answers ``/metadata``."""
        log_path = self.cwd / "serve.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [self.command, "serve", "--config", "settings.yaml"],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for_metadata(self.base_url, process, log_path)
            yield process
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
