"""Start-up schema checks: Alembic is loaded only when a migration must run.

A worker that starts on a current schema should not carry Alembic (and Mako) in memory, so
the revision is read with plain SQLAlchemy and compared with ``HEAD_REVISION``. Whether a
module was imported is only visible in a fresh interpreter, hence the subprocesses.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from store.db import sync_url
from store.migrate import (
    HEAD_REVISION,
    SchemaNotCurrent,
    alembic_config,
    check_current,
    current_revisions,
    upgrade,
)

PROJECT = Path(__file__).resolve().parents[2]

#: Starts the gateway's services on argv[1] (auto-migrating if argv[2] is "true") and
#: prints whether Alembic got imported.
START_SERVICES = """
import asyncio
import sys

from gateway.services import Services
from gateway.settings import load_settings


async def start_and_stop(database_url: str, auto_migrate: bool) -> None:
    settings = load_settings(
        None,
        dev_mode=False,
        id_key="test-id-key-0123456789",
        data_key="test-data-key-0123456789",
        audit_checkpoint_key="a1" * 32,
        database_url=database_url,
        auto_migrate=auto_migrate,
    )
    services = await Services.start(settings)
    await services.aclose()


asyncio.run(start_and_stop(sys.argv[1], sys.argv[2] == "true"))
print("alembic" in sys.modules)
"""


def alembic_loaded_by_start_up(database_url: str, *, auto_migrate: bool) -> bool:
    """Start the services in a fresh interpreter; whether that imported Alembic."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMLAD_")}
    done = subprocess.run(
        [sys.executable, "-c", START_SERVICES, database_url, str(auto_migrate).lower()],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = done.stdout.strip().splitlines()[-1]
    assert answer in {"True", "False"}, done.stdout
    return answer == "True"


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'samlad.db'}"


def test_head_revision_is_alembics_head() -> None:
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert scripts.get_heads() == [HEAD_REVISION]
    assert scripts.get_current_head() == HEAD_REVISION


def test_migrated_database_records_the_head(database_url: str) -> None:
    assert current_revisions(database_url) == (HEAD_REVISION,)
    upgrade(database_url)  # nothing to do
    check_current(database_url)


@pytest.mark.parametrize("auto_migrate", [False, True])
def test_start_on_current_schema_leaves_alembic_unloaded(
    tmp_path: Path, auto_migrate: bool
) -> None:
    url = sqlite_url(tmp_path)
    upgrade(url)
    assert not alembic_loaded_by_start_up(url, auto_migrate=auto_migrate)


def test_start_on_empty_database_migrates_with_alembic(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    assert alembic_loaded_by_start_up(url, auto_migrate=True)
    assert current_revisions(url) == (HEAD_REVISION,)
    check_current(url)


def test_database_behind_is_refused_then_upgraded(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    upgrade(url)
    command.downgrade(alembic_config(url), "0004")
    with pytest.raises(SchemaNotCurrent, match=f"at 0004, expected {HEAD_REVISION}"):
        check_current(url)
    upgrade(url)
    check_current(url)


def test_empty_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaNotCurrent, match=f"at nothing, expected {HEAD_REVISION}"):
        check_current(sqlite_url(tmp_path))


def test_several_recorded_revisions_are_not_current(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    upgrade(url)
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO alembic_version VALUES ('9999')"))
    finally:
        engine.dispose()
    recorded = ", ".join(sorted([HEAD_REVISION, "9999"]))
    with pytest.raises(SchemaNotCurrent, match=f"at {recorded}, expected"):
        check_current(url)


def test_unreachable_database_message_leaves_out_the_url() -> None:
    url = "postgresql://samlad:hunter2-secret@127.0.0.1:1/samlad"
    with pytest.raises(SchemaNotCurrent, match="cannot be reached") as raised:
        check_current(url)
    assert "hunter2" not in str(raised.value)
    assert "127.0.0.1" not in str(raised.value)


def test_migrating_a_sqlite_file_puts_it_in_its_write_ahead_log(tmp_path: Path) -> None:
    """Set once, while nothing else uses the file: the gateway's connections then find it
    so and never take the database's lock to switch it under load."""
    path = tmp_path / "samlad.db"
    upgrade(f"sqlite:///{path}")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
