"""Signed checkpoints of the access log: written at their bounds, exported to a file, and
``samlad audit verify`` naming each kind of tampering against them, on both databases."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, text

from consent.audit import AuditLog
from consent.checkpoints import (
    CHECKPOINT_TABLE,
    Checkpoint,
    Checkpointer,
    CheckpointKey,
    JsonLinesFile,
    read_checkpoint_file,
)
from consent.entries import AUDIT_TABLE, GENESIS_HASH, compute_hash
from consent.verify import AnchorReport, verify_anchored, verify_command
from gateway.run.cli import build_parser
from gateway.settings import DEV_AUDIT_CHECKPOINT_KEY, ConfigError, load_settings
from store.db import Database
from tests.consent.helpers import connection, entry, triggers_off

pytestmark = pytest.mark.anyio

PATIENT = "patc" + "c" * 28
KEY = CheckpointKey.from_hex("11" * 32)
OTHER_KEY = CheckpointKey.from_hex("22" * 32)
START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Anchored:
    """A log with a checkpointer on its own database handle, exporting to ``file``."""

    log: AuditLog
    file: Path
    clock: FakeClock


@asynccontextmanager
async def anchored_log(
    database_url: str,
    file: Path,
    *,
    every_entries: int = 5,
    every_seconds: float = 3600.0,
    clock: FakeClock | None = None,
    max_batch: int = 256,
    key: CheckpointKey = KEY,
) -> AsyncIterator[Anchored]:
    db = Database(database_url)
    clock = clock or FakeClock()
    checkpointer = Checkpointer(
        key,
        every_entries=every_entries,
        every_seconds=every_seconds,
        sinks=[JsonLinesFile(file)],
        clock=clock,
    )
    log = AuditLog(db, checkpoints=checkpointer, max_batch=max_batch)
    try:
        yield Anchored(log, file, clock)
    finally:
        await log.aclose()
        await db.dispose()


async def _append_anchored(database_url: str, file: Path, count: int, **options: Any) -> None:
    async with anchored_log(database_url, file, **options) as anchored:
        for i in range(count):
            await anchored.log.append(entry(PATIENT, returned_count=i))


def _stored_checkpoints(database_url: str) -> list[Checkpoint]:
    with connection(database_url) as conn:
        rows = conn.execute(CHECKPOINT_TABLE.select().order_by(CHECKPOINT_TABLE.c.seq))
        return [Checkpoint.from_row(row) for row in rows.mappings()]


def _rows(database_url: str) -> list[dict[str, Any]]:
    with connection(database_url) as conn:
        result = conn.execute(AUDIT_TABLE.select().order_by(AUDIT_TABLE.c.seq))
        return [dict(row) for row in result.mappings()]


async def _verify(database_url: str, file: Path, key: CheckpointKey = KEY) -> AnchorReport:
    db = Database(database_url)
    try:
        return await verify_anchored(db, key.verify_key, read_checkpoint_file(file))
    finally:
        await db.dispose()


@pytest.fixture
def file(tmp_path: Path) -> Path:
    return tmp_path / "exported" / "audit-checkpoints.jsonl"


def _checkpoints_off(conn: Connection) -> None:
    """As a superuser: remove every checkpoint row from the database, past its triggers."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE audit_checkpoint DISABLE TRIGGER USER"))
        conn.execute(text("DELETE FROM audit_checkpoint"))
        conn.execute(text("ALTER TABLE audit_checkpoint ENABLE TRIGGER USER"))
        return
    saved = conn.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
        {"t": "audit_checkpoint"},
    ).scalars()
    saved_sql = list(saved)
    assert saved_sql, "the migration should have created triggers"
    conn.execute(text("DROP TRIGGER audit_checkpoint_no_delete"))
    conn.execute(text("DROP TRIGGER audit_checkpoint_no_update"))
    conn.execute(text("DELETE FROM audit_checkpoint"))
    for sql in saved_sql:
        conn.execute(text(sql))


def _rechain(conn: Connection, rows: list[dict[str, Any]], start: int) -> None:
    """Rewrite rows ``start``.. (0-based) with recomputed links and hashes, as someone
    who knows the format (it is public) and has full rights would."""
    prev = GENESIS_HASH if start == 0 else rows[start - 1]["entry_hash"]
    for row in rows[start:]:
        row["prev_hash"] = prev
        row["entry_hash"] = prev = compute_hash(row)
        values = {k: v for k, v in row.items() if k != "seq"}
        conn.execute(AUDIT_TABLE.update().where(AUDIT_TABLE.c.seq == row["seq"]).values(**values))


def _write(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))


def _signed(*, seq: int, prev_seq: int, head_hash: str) -> Checkpoint:
    return KEY.sign(
        seq=seq, head_hash=head_hash, prev_seq=prev_seq, entries_digest="0" * 64, signed_at=START
    )


# -- Writing ------------------------------------------------------------------------------


async def test_checkpoints_are_written_at_the_entry_bound(database_url: str, file: Path) -> None:
    async with anchored_log(database_url, file, every_entries=5) as anchored:
        for i in range(11):
            await anchored.log.append(entry(PATIENT, returned_count=i))
            if i == 0:
                # The first entry is anchored at once: there is no checkpoint to wait on.
                assert [c.seq for c in _stored_checkpoints(database_url)] == [1]
            if i == 4:
                assert [c.seq for c in _stored_checkpoints(database_url)] == [1]
        stored = _stored_checkpoints(database_url)
        assert [(c.prev_seq, c.seq) for c in stored] == [(0, 1), (1, 6), (6, 11)]
    # Each checkpoint is exported once committed (after its callers are woken); all are
    # by the time the log is closed, and no more (the head is anchored already).
    assert read_checkpoint_file(file) == stored
    rows = _rows(database_url)
    for checkpoint in stored:
        assert checkpoint.head_hash == rows[checkpoint.seq - 1]["entry_hash"]
        assert checkpoint.signed_at == START
        assert KEY.verify_key.verifies(checkpoint)


async def test_checkpoints_are_written_at_the_time_bound(database_url: str, file: Path) -> None:
    clock = FakeClock()
    async with anchored_log(
        database_url, file, every_entries=1000, every_seconds=60, clock=clock
    ) as anchored:
        log = anchored.log
        await log.append(entry(PATIENT))  # the first: anchored at once
        clock.advance(10)
        await log.append(entry(PATIENT))
        await log.append(entry(PATIENT))
        assert await log.checkpoint_if_due() is None  # 10 s: not yet
        clock.advance(49)
        assert await log.checkpoint_if_due() is None  # 59 s: not yet
        clock.advance(1)
        due = await log.checkpoint_if_due()  # 60 s, entries since: due
        assert due is not None
        assert (due.prev_seq, due.seq, due.signed_at) == (1, 3, START + timedelta(seconds=60))
        clock.advance(3600)
        assert await log.checkpoint_if_due() is None  # nothing new to anchor
        await log.append(entry(PATIENT))  # the last is an hour old: this one is anchored
        assert [c.seq for c in _stored_checkpoints(database_url)] == [1, 3, 4]
    assert [c.seq for c in read_checkpoint_file(file)] == [1, 3, 4]


async def test_a_clean_shutdown_anchors_the_head(database_url: str, file: Path) -> None:
    await _append_anchored(database_url, file, 4, every_entries=100)
    assert [c.seq for c in _stored_checkpoints(database_url)] == [1, 4]
    assert [c.seq for c in read_checkpoint_file(file)] == [1, 4]


async def test_checkpoint_times_never_go_back(database_url: str, file: Path) -> None:
    clock = FakeClock()
    async with anchored_log(database_url, file, every_entries=1, clock=clock) as anchored:
        await anchored.log.append(entry(PATIENT))
        clock.advance(-300)  # another host's clock, five minutes behind
        await anchored.log.append(entry(PATIENT))
    first, second = _stored_checkpoints(database_url)
    assert second.signed_at == first.signed_at == START


async def test_two_writers_on_one_database_make_one_line_of_checkpoints(
    database_url: str, file: Path
) -> None:
    """Two logs with their own engines and clocks, as two gateway processes have, append
    concurrently; the checkpoints stay one line: no two at one position, each linking to
    the one before, each at the head it names."""
    every, per_log, max_batch = 10, 60, 4
    async with (
        anchored_log(database_url, file, every_entries=every, max_batch=max_batch) as one,
        anchored_log(database_url, file, every_entries=every, max_batch=max_batch) as two,
    ):
        await asyncio.gather(
            *(
                (one, two)[i % 2].log.append(entry(PATIENT, returned_count=i))
                for i in range(2 * per_log)
            )
        )
    stored = _stored_checkpoints(database_url)
    assert stored[0].prev_seq == 0
    for before, after in itertools.pairwise(stored):
        assert after.prev_seq == before.seq
    for before, after in itertools.pairwise(stored[:-1]):
        # Due once `every` entries are unanchored, written with the batch that got there.
        assert every <= after.seq - before.seq < every + max_batch
    assert stored[-1].seq == 2 * per_log  # the last one written at shutdown
    assert len(stored) >= 2 * per_log // (every + max_batch)
    # Both processes exported to the one file: each checkpoint once, in any order.
    exported = read_checkpoint_file(file)
    assert sorted(exported, key=lambda c: c.seq) == stored
    report = await _verify(database_url, file)
    assert report.ok, report.summary()
    assert report.checkpoint == stored[-1]


# -- Verifying ----------------------------------------------------------------------------


async def test_verify_reports_ok_with_the_checkpoint(
    database_url: str, file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _append_anchored(database_url, file, 7, every_entries=5)
    assert await verify_command(database_url, KEY.verify_key, file) == 0
    out = capsys.readouterr().out
    assert "audit log OK: 7 entries" in out
    assert "anchored at checkpoint seq 7" in out
    assert KEY.verify_key.key_id in out


@pytest.mark.parametrize("checkpoints_deleted", [False, True])
async def test_a_cut_tail_is_named(
    database_url: str, file: Path, checkpoints_deleted: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    await _append_anchored(database_url, file, 9, every_entries=4)
    with triggers_off(database_url) as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE seq > 6"))
        if checkpoints_deleted:  # the database's own copies go too: the file remembers
            _checkpoints_off(conn)
    report = await _verify(database_url, file)
    assert report.chain.ok  # what remains is a perfect chain
    assert (report.problem, report.checkpoint and report.checkpoint.seq) == ("truncated", 9)
    assert await verify_command(database_url, KEY.verify_key, file) == 1
    out = capsys.readouterr().out
    assert "audit log TRUNCATED: the chain ends at seq 6" in out
    assert "covers up to seq 9" in out


async def test_a_rewritten_chain_is_named(database_url: str, file: Path) -> None:
    await _append_anchored(database_url, file, 9, every_entries=4)
    rows = _rows(database_url)
    rows[2]["actor_id"] = "SE2321000016-EVIL"
    with triggers_off(database_url) as conn:
        _rechain(conn, rows, 2)
        _checkpoints_off(conn)
    report = await _verify(database_url, file)
    assert report.chain.ok  # recomputed: the chain alone cannot tell
    assert report.problem == "rewritten"
    assert report.checkpoint is not None
    assert report.checkpoint.seq == 5
    assert "entries 2..5 differ" in report.summary()
    assert "REWRITTEN" in report.summary()


async def test_a_rewritten_chain_that_keeps_the_signed_head_is_named(
    database_url: str, file: Path
) -> None:
    """A row changed, and the next not relinked: the head still matches its checkpoint."""
    await _append_anchored(database_url, file, 9, every_entries=4)
    with triggers_off(database_url) as conn:
        conn.execute(text("UPDATE audit_entry SET outcome = 'denied' WHERE seq = 3"))
    report = await _verify(database_url, file)
    assert (report.problem, report.checkpoint and report.checkpoint.seq) == ("rewritten", 5)


@pytest.mark.parametrize("rechained", [True, False])
async def test_a_reordering_is_named(database_url: str, file: Path, rechained: bool) -> None:
    await _append_anchored(database_url, file, 9, every_entries=4)
    rows = _rows(database_url)
    # Entries 3 and 4 change places (seq stays with the position), …
    third, fourth = rows[2], rows[3]
    rows[2] = {**fourth, "seq": 3}
    rows[3] = {**third, "seq": 4}
    with triggers_off(database_url) as conn:
        if rechained:  # … and the chain is recomputed from there, or …
            _rechain(conn, rows, 2)
        else:  # … the rows are moved as they are, hashes and all.
            for row in rows[2:4]:
                values = {k: v for k, v in row.items() if k != "seq"}
                conn.execute(
                    AUDIT_TABLE.update().where(AUDIT_TABLE.c.seq == row["seq"]).values(**values)
                )
    report = await _verify(database_url, file)
    assert report.chain.ok is rechained
    assert report.problem == "reordered"
    assert report.checkpoint is not None
    assert report.checkpoint.seq == 5
    assert "REORDERED: entries 2..5 are the ones signed, in another order" in report.summary()


async def test_a_forged_checkpoint_is_named(database_url: str, file: Path) -> None:
    """Cut the tail and sign a checkpoint of the new head with a key of one's own."""
    await _append_anchored(database_url, file, 6, every_entries=100)
    rows = _rows(database_url)
    with triggers_off(database_url) as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE seq > 4"))
    forged = OTHER_KEY.sign(
        seq=4,
        head_hash=rows[3]["entry_hash"],
        prev_seq=1,
        entries_digest="0" * 64,
        signed_at=START,
    )
    # Under the real key's name, too: the signature still fails.
    impostor = replace(forged, key_id=KEY.verify_key.key_id)
    genuine = read_checkpoint_file(file)
    for fake in (forged, impostor):
        lines = [c.to_json() for c in genuine if c.seq < 6] + [fake.to_json()]
        _write(file, lines)
        report = await _verify(database_url, file)
        assert (report.problem, report.checkpoint) == ("bad-signature", fake)
        assert "CHECKPOINT SIGNATURE INVALID" in report.summary()


async def test_an_altered_checkpoint_is_named(database_url: str, file: Path) -> None:
    await _append_anchored(database_url, file, 6, every_entries=100)
    genuine = read_checkpoint_file(file)
    altered = replace(genuine[-1], head_hash="f" * 64)
    _write(file, [altered.to_json()])
    report = await _verify(database_url, file)
    assert report.problem == "bad-signature"


async def test_two_signed_checkpoints_at_one_position_are_named(
    database_url: str, file: Path
) -> None:
    """Only a leaked key can do this; verification says so rather than pick one."""
    await _append_anchored(database_url, file, 3, every_entries=100)
    other = KEY.sign(
        seq=3, head_hash="e" * 64, prev_seq=1, entries_digest="0" * 64, signed_at=START
    )
    with file.open("ab") as out:
        out.write(orjson.dumps(other.to_json()) + b"\n")
    report = await _verify(database_url, file)
    assert report.problem == "checkpoint-conflict"


async def test_a_chain_without_checkpoints_is_not_ok(
    database_url: str, file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Database(database_url)
    try:
        await AuditLog(db).append(entry(PATIENT))  # no checkpointer
    finally:
        await db.dispose()
    assert await verify_command(database_url, KEY.verify_key, file) == 1
    captured = capsys.readouterr()
    assert "audit log UNANCHORED" in captured.out
    assert "no checkpoint file" in captured.err


async def test_a_missing_checkpoint_file_is_not_ok(
    database_url: str, file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _append_anchored(database_url, file, 3, every_entries=100)
    os.remove(file)
    assert await verify_command(database_url, KEY.verify_key, file) == 1
    assert "audit log UNANCHORED: no checkpoint file at" in capsys.readouterr().out


async def test_an_empty_log_verifies(database_url: str, file: Path) -> None:
    db = Database(database_url)
    try:
        report = await verify_anchored(db, KEY.verify_key)
    finally:
        await db.dispose()
    assert report.ok
    assert report.checkpoint is None


async def test_a_chain_break_past_the_last_checkpoint_is_named(
    database_url: str, file: Path
) -> None:
    await _append_anchored(database_url, file, 3, every_entries=100)
    async with anchored_log(database_url, file, every_entries=100) as anchored:
        # (The shutdown checkpoint would anchor these: take the checkpointer away.)
        anchored.log._checkpoints = None
        for _ in range(3):
            await anchored.log.append(entry(PATIENT))
    with triggers_off(database_url) as conn:
        conn.execute(text("UPDATE audit_entry SET outcome = 'denied' WHERE seq = 5"))
    report = await _verify(database_url, file)
    assert (report.problem, report.chain.problem) == ("chain", "hash-mismatch")
    assert "BROKEN at seq 5" in report.summary()


async def test_a_damaged_checkpoint_file_is_named(
    database_url: str, file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _append_anchored(database_url, file, 2, every_entries=100)
    _write(file, [c.to_json() for c in read_checkpoint_file(file)] + [{"seq": "two"}])
    assert await verify_command(database_url, KEY.verify_key, file) == 1
    assert "CHECKPOINT FILE DAMAGED: line 3" in capsys.readouterr().out


def test_a_line_cut_short_by_a_crash_is_ignored(tmp_path: Path) -> None:
    checkpoint = KEY.sign(
        seq=2, head_hash="a" * 64, prev_seq=0, entries_digest="0" * 64, signed_at=START
    )
    path = tmp_path / "cp.jsonl"
    path.write_bytes(orjson.dumps(checkpoint.to_json()) + b"\n" + b'{"seq": 3, "head')
    assert read_checkpoint_file(path) == [checkpoint]


async def test_verify_command_without_a_database(
    unavailable_url: str, file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await verify_command(unavailable_url, KEY.verify_key, None) == 2
    assert "cannot be read" in capsys.readouterr().err


# -- Settings -----------------------------------------------------------------------------


def test_the_development_key_is_refused_outside_dev_mode() -> None:
    secrets = {"id_key": "k" * 20, "data_key": "d" * 20}
    with pytest.raises(ConfigError, match="audit_checkpoint_key"):
        load_settings(None, **secrets)
    with pytest.raises(ConfigError, match="audit_checkpoint_key"):
        load_settings(None, **secrets, audit_checkpoint_key="not hex")
    settings = load_settings(None, **secrets, audit_checkpoint_key="ab" * 32)
    assert settings.audit_checkpoint_key.get_secret_value() == "ab" * 32
    assert load_settings(None, dev_mode=True).audit_checkpoint_key.get_secret_value() == (
        DEV_AUDIT_CHECKPOINT_KEY
    )


class BrokenSink:
    async def publish(self, checkpoint: Checkpoint) -> None:
        raise OSError("disk full")


async def test_an_export_that_fails_is_logged_and_the_log_goes_on(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(database_url)
    try:
        log = AuditLog(db, checkpoints=Checkpointer(KEY, every_entries=2, sinks=[BrokenSink()]))
        for _ in range(3):
            await log.append(entry(PATIENT))
        await log.aclose()
    finally:
        await db.dispose()
    # In the database all the same; the next export would cover the missing ones.
    assert [c.seq for c in _stored_checkpoints(database_url)] == [1, 3]
    assert "audit checkpoint at seq 3 not exported: OSError" in caplog.text


async def test_a_checkpoint_row_beyond_the_head_is_reported(
    database_url: str, file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An account with INSERT rights (the gateway's own) adds a row ahead of the chain:
    the gateway says so, and verify names it as not signed."""
    await _append_anchored(database_url, file, 2, every_entries=100)
    junk = OTHER_KEY.sign(
        seq=1000, head_hash="0" * 64, prev_seq=2, entries_digest="0" * 64, signed_at=START
    )
    with connection(database_url) as conn:
        conn.execute(CHECKPOINT_TABLE.insert().values(**{**junk.to_json(), "signed_at": START}))
    await _append_anchored(database_url, file, 1, every_entries=1)
    assert "an audit checkpoint lies beyond the chain's head" in caplog.text
    report = await _verify(database_url, file)
    assert (report.problem, report.checkpoint) == ("bad-signature", junk)


def test_the_verify_command_line_takes_the_key_from_settings_and_a_checkpoint_file(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "elsewhere" / "copy.jsonl"
    dev_key = CheckpointKey.from_hex(DEV_AUDIT_CHECKPOINT_KEY)
    asyncio.run(_append_anchored(database_url, exported, 3, every_entries=2, key=dev_key))
    config = tmp_path / "samlad.toml"
    config.write_text(f'[gateway]\ndev_mode = true\ndatabase_url = "{database_url}"\n')
    args = build_parser().parse_args(
        ["audit", "verify", "--config", str(config), "--checkpoints", str(exported)]
    )
    # The configured file (in data_dir) does not exist: the copy elsewhere is named.
    assert args.func(args) == 0
    assert "anchored at checkpoint seq 3" in capsys.readouterr().out
    with triggers_off(database_url) as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE seq = 3"))
    assert args.func(args) == 1
    assert "TRUNCATED" in capsys.readouterr().out
