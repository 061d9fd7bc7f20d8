"""`samlad serve --workers N`: several server processes behind one port, one database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import IssuerKit
from tests.gateway.test_clients import free_port
from tests.served import SAMLAD, serve


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _sqlite_config(tmp_path: Path, issuer: IssuerKit, port: int) -> Path:
    config = tmp_path / "gateway.toml"
    config.write_text(
        "[gateway]\n"
        'id_key = "serve-test-id-key-0123"\n'
        'data_key = "serve-test-data-key-0123"\n'
        f'audit_checkpoint_key = "{"a1" * 32}"\n'
        f'audit_checkpoint_file = "{tmp_path / "audit-checkpoints.jsonl"}"\n'
        f'database_url = "sqlite:///{tmp_path / "samlad.db"}"\n'
        "auto_migrate = true\n"
        f"port = {port}\n"
        "\n[[issuers]]\n"
        f'issuer = "{issuer.config.issuer}"\n'
        f'audience = "{issuer.config.audience}"\n'
        f'jwks_file = "{issuer.config.jwks_file}"\n'
    )
    return config


def _search_tolvan(port: int, issuer: IssuerKit) -> httpx.Response:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        return client.post(
            "/fhir/Patient/_search",
            data={"identifier": "http://electronichealth.se/identifier/personnummer|191212121212"},
            headers={
                "Authorization": f"Bearer {issuer.citizen('191212121212')}",
                "Connection": "close",
            },
        )


def test_several_workers_serve_one_port(tmp_path: Path, issuer: IssuerKit) -> None:
    port = free_port()
    config = _sqlite_config(tmp_path, issuer, port)
    with serve(config, port, "--workers", "2", ready_within=60) as served:
        process = served.process
        # The parent supervises the worker processes (uvicorn adds none of its own).
        assert len(_children(process.pid)) >= 2
        for _ in range(8):  # new connections: both workers answer, on one database
            response = _search_tolvan(port, issuer)
            assert response.status_code == 200, response.text
            assert response.json()["total"] == 0  # no sources configured
    assert process.returncode == 0, served.output
    assert "Traceback" not in served.output


def test_a_gateway_on_sqlite_does_without_the_postgresql_driver(
    tmp_path: Path, issuer: IssuerKit
) -> None:
    """psycopg, about 9 MB of a process's memory, is loaded only where PostgreSQL is
    used: not by a gateway on SQLite, started and answering a read."""
    port = free_port()
    with serve(_sqlite_config(tmp_path, issuer, port), port, ready_within=60) as served:
        assert _search_tolvan(port, issuer).status_code == 200
        mapped = Path(f"/proc/{served.process.pid}/maps").read_text()
        assert "_sqlite3" in mapped  # the SQLite driver's library: the map is the worker's
        assert "psycopg" not in mapped


def test_a_production_gateway_does_without_the_development_login(
    tmp_path: Path, issuer: IssuerKit
) -> None:
    """The development login's pages and the simulated people they offer (about 2 MB of
    a process) are loaded only by a gateway that serves them; the legacy XML adapter only
    by one with a legacy source."""
    config = _sqlite_config(tmp_path, issuer, free_port())
    program = (
        "import sys\n"
        "from pathlib import Path\n"
        "from gateway.run.app import create_app\n"
        "from gateway.settings import load_settings\n"
        f"create_app(load_settings(Path({str(config)!r})))\n"
        "loaded = ('gateway.run.a', 'simregions', 'adapters.legacy_xml', 'defusedxml')\n"
        "print(sorted(m for m in sys.modules if m.startswith(loaded)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "['gateway.run.app']"


def test_no_workers_is_refused() -> None:
    done = subprocess.run(
        [*SAMLAD, "serve", "--config", "unused.toml", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "must be at least 1" in done.stderr


def test_the_development_authorization_server_is_refused_with_several_workers(
    tmp_path: Path,
) -> None:
    """Its codes and refresh tokens live in one process's memory."""
    config = tmp_path / "dev.toml"
    config.write_text(
        """
[gateway]
dev_mode = true
public_base_url = "http://127.0.0.1:8000"
dev_authorization_server = true

[[issuers]]
issuer = "http://127.0.0.1:8000/dev-issuer"
audience = "http://127.0.0.1:8000/fhir"
jwks_file = "dev-issuer/jwks.json"
dev_signing_key_file = "dev-issuer/signing-key.jwk.json"
""",
        encoding="utf-8",
    )
    done = subprocess.run(
        [*SAMLAD, "serve", "--config", str(config), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "runs in one process: no --workers" in done.stderr
