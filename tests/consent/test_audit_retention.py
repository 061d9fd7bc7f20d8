"""Access-log retention: ``samlad audit prune`` removes the entries past
``audit_retention_days`` only after a checkpoint, only up to a signed checkpoint, and the
chain kept still verifies against its checkpoints; the database refuses any other delete;
a removal without a signed checkpoint at its end is named. On both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from consent.audit import AuditLog
from consent.checkpoints import Checkpointer, CheckpointKey, JsonLinesFile, read_checkpoint_file
from consent.retention import prune_command
from consent.verify import verify_anchored, verify_command
from gateway.run.cli import build_parser
from store.db import Database
from tests.consent.helpers import connection, entry, triggers_off

pytestmark = pytest.mark.anyio

KEY = CheckpointKey.from_hex("33" * 32)
PATIENT = "patr" + "r" * 28
THREE_YEARS = 3 * 365 + 1


def _checkpointer(file: Path) -> Checkpointer:
    return Checkpointer(KEY, every_entries=3, every_seconds=3600, sinks=[JsonLinesFile(file)])


async def _append(database_url: str, file: Path, count: int) -> None:
    db = Database(database_url)
    log = AuditLog(db, checkpoints=_checkpointer(file))
    try:
        for i in range(count):
            await log.append(entry(PATIENT, returned_count=i))
    finally:
        await log.aclose()
        await db.dispose()


def _seqs(database_url: str) -> list[int]:
    with connection(database_url) as conn:
        return [
            int(s) for s in conn.execute(text("SELECT seq FROM audit_entry ORDER BY seq")).scalars()
        ]


@pytest.fixture
def file(tmp_path: Path) -> Path:
    return tmp_path / "audit-checkpoints.jsonl"


def _years_ahead(years: int) -> datetime:
    return datetime.now(UTC) + timedelta(days=365 * years + 1)


async def test_entries_past_their_retention_are_removed_and_the_chain_still_verifies(
    database_url: str, file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _append(database_url, file, 7)  # checkpoints at 1, 4 and 7 (the shutdown's)
    assert await prune_command(database_url, _checkpointer(file), THREE_YEARS) == 0
    assert "no entries past their retention" in capsys.readouterr().out
    assert _seqs(database_url) == list(range(1, 8)), "nothing is three years old"

    later = _years_ahead(4)
    assert await prune_command(database_url, _checkpointer(file), THREE_YEARS, now=later) == 0
    assert "the chain kept starts at seq 5" in capsys.readouterr().out
    assert _seqs(database_url) == [5, 6, 7], "up to the last signed checkpoint short of the head"
    assert await verify_command(database_url, KEY.verify_key, file) == 0
    assert "audit log OK: 3 entries, head seq 7" in capsys.readouterr().out

    await _append(database_url, file, 3)  # the chain goes on from the entries kept
    assert await verify_command(database_url, KEY.verify_key, file) == 0
    assert await prune_command(database_url, _checkpointer(file), THREE_YEARS, now=later) == 0
    assert _seqs(database_url) == [8, 9, 10]
    assert await verify_command(database_url, KEY.verify_key, file) == 0


async def test_the_database_refuses_a_delete_no_prune_covers(database_url: str, file: Path) -> None:
    await _append(database_url, file, 7)
    await prune_command(database_url, _checkpointer(file), THREE_YEARS, now=_years_ahead(4))
    for seq in (5, 7):
        with pytest.raises(DBAPIError), connection(database_url) as conn:
            conn.execute(text("DELETE FROM audit_entry WHERE seq = :seq"), {"seq": seq})
    with pytest.raises(DBAPIError), connection(database_url) as conn:
        conn.execute(text("DELETE FROM audit_prune"))
    assert _seqs(database_url) == [5, 6, 7]


async def test_a_removal_at_no_signed_checkpoint_is_named(database_url: str, file: Path) -> None:
    await _append(database_url, file, 7)
    with triggers_off(database_url) as conn:
        head = conn.execute(text("SELECT entry_hash FROM audit_entry WHERE seq = 2")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO audit_prune (through_seq, through_hash, cutoff, pruned_at)"
                " VALUES (2, :hash, :now, :now)"
            ),
            {"hash": head, "now": datetime.now(UTC)},
        )
        conn.execute(text("DELETE FROM audit_entry WHERE seq <= 2"))
    db = Database(database_url)
    try:
        report = await verify_anchored(db, KEY.verify_key, read_checkpoint_file(file))
    finally:
        await db.dispose()
    assert report.chain.ok, "the chain kept links to the recorded hash"
    assert report.problem == "unanchored"
    assert "removed at no signed checkpoint" in report.detail


def test_the_prune_command_line() -> None:
    args = build_parser().parse_args(["audit", "prune"])
    assert args.func.__name__ == "cmd_audit_prune"
