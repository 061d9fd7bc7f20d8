"""Fixtures for the access-log tests."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def unavailable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        # Not a database. (A path that cannot be opened at all would do too, but then
        # aiosqlite 0.22 leaves a worker thread behind that outlives the test's loop.)
        garbage = tmp_path / "samlad.db"
        garbage.write_bytes(b"this is not an SQLite database" * 100)
        return f"sqlite:///{garbage}"
    return f"postgresql://postgres@127.0.0.1:{_closed_port()}/samlad"
