"""The access log on both databases: the chain, tamper detection, concurrency, failures."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError

from consent.audit import APPEND_LOCK, AuditLog
from consent.entries import (
    AUDIT_TABLE,
    GENESIS_HASH,
    HASHED_FIELDS,
    AuditEntryPublic,
    ChainReport,
    compute_hash,
)
from store.db import Database, StoreUnavailable, lock_key
from tests.consent.helpers import connection, entry, triggers_off

pytestmark = pytest.mark.anyio

PATIENT_A = "pata" + "a" * 28
PATIENT_B = "patb" + "b" * 28
_SEQ_CHECK = "ck_audit_entry_seq_positive"


async def _append(
    database_url: str, count: int, patient_id: str = PATIENT_A
) -> list[AuditEntryPublic]:
    db = Database(database_url)
    try:
        log = AuditLog(db)
        return [await log.append(entry(patient_id, returned_count=i)) for i in range(count)]
    finally:
        await db.dispose()


async def _verify(database_url: str, batch_size: int = 1000) -> ChainReport:
    db = Database(database_url)
    try:
        return await AuditLog(db).verify(batch_size=batch_size)
    finally:
        await db.dispose()


def _rows(database_url: str) -> list[dict[str, Any]]:
    with connection(database_url) as conn:
        result = conn.execute(AUDIT_TABLE.select().order_by(AUDIT_TABLE.c.seq))
        return [dict(row) for row in result.mappings()]


async def test_appends_form_a_chain(database_url: str) -> None:
    appended = await _append(database_url, 5)
    assert [e.seq for e in appended] == [1, 2, 3, 4, 5]
    assert appended[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(appended):
        assert after.prev_hash == before.entry_hash
        assert after.recorded_at >= before.recorded_at
    # What append returned is what was stored, and the stored hashes recompute.
    stored = _rows(database_url)
    assert [r["entry_hash"] for r in stored] == [e.entry_hash for e in appended]
    for row in stored:
        assert compute_hash(row) == row["entry_hash"]
    assert appended[0].recorded_at.tzinfo is not None
    report = await _verify(database_url, batch_size=2)  # several batches
    assert report.ok
    assert report.checked == 5
    assert (report.head_seq, report.head_hash) == (5, appended[-1].entry_hash)


async def test_empty_log_verifies(database_url: str) -> None:
    report = await _verify(database_url)
    assert report.ok
    assert report.checked == 0
    assert report.head_seq is None


def test_every_column_is_hashed() -> None:
    columns = {c.name for c in AUDIT_TABLE.columns} - {"entry_hash"}
    assert columns == set(HASHED_FIELDS)


async def test_update_and_delete_are_refused(database_url: str) -> None:
    await _append(database_url, 2)
    before = _rows(database_url)
    with pytest.raises(DBAPIError, match="append-only"), connection(database_url) as conn:
        conn.execute(text("UPDATE audit_entry SET patient_id = 'someone-else' WHERE seq = 1"))
    with pytest.raises(DBAPIError, match="append-only"), connection(database_url) as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE seq = 2"))
    with pytest.raises(DBAPIError, match="append-only"), connection(database_url) as conn:
        conn.execute(text("DELETE FROM audit_entry"))
    assert _rows(database_url) == before
    assert (await _verify(database_url)).ok


async def test_verify_detects_a_modified_row(database_url: str) -> None:
    await _append(database_url, 5)
    with triggers_off(database_url) as conn:
        conn.execute(text("UPDATE audit_entry SET outcome = 'denied' WHERE seq = 3"))
    report = await _verify(database_url)
    assert not report.ok
    assert (report.first_broken_seq, report.problem, report.checked) == (3, "hash-mismatch", 3)
    assert report.head_seq == 2
    assert "BROKEN at seq 3" in report.summary()


async def test_verify_detects_a_modified_row_with_a_recomputed_hash(database_url: str) -> None:
    await _append(database_url, 5)
    row = _rows(database_url)[2]
    row["actor_id"] = "SE2321000016-EVIL"
    forged = compute_hash(row)
    with triggers_off(database_url) as conn:
        conn.execute(
            text("UPDATE audit_entry SET actor_id = :a, entry_hash = :h WHERE seq = 3"),
            {"a": row["actor_id"], "h": forged},
        )
    report = await _verify(database_url)
    assert (report.ok, report.first_broken_seq, report.problem) == (
        False,
        4,
        "prev-hash-mismatch",
    )


async def test_verify_detects_a_deleted_row(database_url: str) -> None:
    await _append(database_url, 5)
    with triggers_off(database_url) as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE seq = 3"))
    report = await _verify(database_url)
    assert (report.ok, report.first_broken_seq, report.problem) == (False, 3, "seq-gap")


async def test_verify_detects_a_deleted_row_with_renumbering(database_url: str) -> None:
    await _append(database_url, 5)
    with triggers_off(database_url) as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE seq = 3"))
        for seq in (4, 5):  # one by one, in order, so the primary key never collides
            conn.execute(
                text("UPDATE audit_entry SET seq = :n WHERE seq = :o"), {"n": seq - 1, "o": seq}
            )
    report = await _verify(database_url)
    assert (report.ok, report.first_broken_seq, report.problem) == (
        False,
        3,
        "prev-hash-mismatch",
    )


async def test_verify_detects_an_inserted_row(database_url: str) -> None:
    await _append(database_url, 5)
    rows = _rows(database_url)
    # A well-formed forgery after seq 2: right prev_hash, right own hash.
    forged = {
        **rows[2],
        "seq": 3,
        "actor_id": "SE2321000016-EVIL",
        "prev_hash": rows[1]["entry_hash"],
    }
    forged["entry_hash"] = compute_hash(forged)
    with triggers_off(database_url) as conn:
        for seq in (5, 4, 3):  # make room, from the top so the primary key never collides
            conn.execute(
                text("UPDATE audit_entry SET seq = :n WHERE seq = :o"), {"n": seq + 1, "o": seq}
            )
        conn.execute(insert(AUDIT_TABLE).values(**forged))
    report = await _verify(database_url)
    # The forged entry links to its predecessor, but its successor no longer links to it.
    assert not report.ok
    assert report.first_broken_seq == 4
    assert report.problem in {"prev-hash-mismatch", "hash-mismatch"}


async def test_verify_detects_a_row_inserted_past_the_head(database_url: str) -> None:
    await _append(database_url, 3)
    rows = _rows(database_url)
    forged = {**rows[2], "seq": 5, "prev_hash": rows[2]["entry_hash"]}
    forged["entry_hash"] = compute_hash(forged)
    with connection(database_url) as conn:  # INSERT needs no trigger bypass
        conn.execute(insert(AUDIT_TABLE).values(**forged))
    report = await _verify(database_url)
    assert (report.ok, report.first_broken_seq, report.problem) == (False, 4, "seq-gap")


async def test_verify_detects_a_row_inserted_before_the_first(database_url: str) -> None:
    await _append(database_url, 2)
    forged = {**_rows(database_url)[0], "seq": 0, "prev_hash": GENESIS_HASH}
    forged["entry_hash"] = compute_hash(forged)
    postgres = database_url.startswith("postgresql")
    # The CHECK (seq >= 1) stands in the way; someone with full rights can remove it.
    with connection(database_url) as conn:
        if postgres:
            conn.execute(text(f"ALTER TABLE audit_entry DROP CONSTRAINT {_SEQ_CHECK}"))
        else:
            conn.execute(text("PRAGMA ignore_check_constraints = ON"))
        conn.execute(insert(AUDIT_TABLE).values(**forged))
    try:
        report = await _verify(database_url)
        assert (report.ok, report.first_broken_seq, report.problem) == (False, 1, "seq-gap")
    finally:
        if postgres:  # the session's database is shared: put the schema back
            with triggers_off(database_url) as conn:
                conn.execute(text("DELETE FROM audit_entry WHERE seq < 1"))
                conn.execute(
                    text(f"ALTER TABLE audit_entry ADD CONSTRAINT {_SEQ_CHECK} CHECK (seq >= 1)")
                )


async def test_concurrent_appends_keep_one_chain(database_url: str) -> None:
    postgres = database_url.startswith("postgresql")
    count = 150 if postgres else 40
    # Several engines, as several gateway processes would have.
    dbs = [Database(database_url) for _ in range(3 if postgres else 2)]
    try:
        logs = [AuditLog(db) for db in dbs]
        started = time.perf_counter()
        appended = await asyncio.gather(
            *(
                logs[i % len(logs)].append(
                    entry(PATIENT_A if i % 2 else PATIENT_B, returned_count=i)
                )
                for i in range(count)
            )
        )
        elapsed = time.perf_counter() - started
    finally:
        for db in dbs:
            await db.dispose()
    assert sorted(e.seq for e in appended) == list(range(1, count + 1))
    rows = _rows(database_url)
    assert len(rows) == count
    assert sorted(r["returned_count"] for r in rows) == list(range(count))
    report = await _verify(database_url)
    assert report.ok
    assert report.checked == count
    print(f"{count} concurrent appends in {elapsed:.2f}s ({count / elapsed:.0f}/s)")


async def test_for_patient_returns_only_their_entries(database_url: str) -> None:
    db = Database(database_url)
    try:
        log = AuditLog(db)
        for i in range(6):
            await log.append(entry(PATIENT_A if i % 2 == 0 else PATIENT_B, returned_count=i))
        mine = await log.for_patient(PATIENT_A)
        assert [e.returned_count for e in mine] == [4, 2, 0]  # newest first
        assert {e.patient_id for e in mine} == {PATIENT_A}
        assert [e.returned_count for e in await log.for_patient(PATIENT_A, limit=1, offset=1)] == [
            2
        ]
        assert await log.for_patient("nobody") == []
        assert (
            await log.for_patient(PATIENT_A, since=datetime.now(UTC) + timedelta(minutes=1)) == []
        )
        since = mine[1].recorded_at
        assert [e.seq for e in await log.for_patient(PATIENT_A, since=since)] == [
            e.seq for e in mine if e.recorded_at >= since
        ]
        assert mine[0].returned == {
            "types": {"Observation": 2, "Condition": 1},
            "sources": ["region-a"],
        }
        with pytest.raises(ValueError, match="limit"):
            await log.for_patient(PATIENT_A, limit=0)
        with pytest.raises(ValueError, match="timezone"):
            await log.for_patient(PATIENT_A, since=datetime(2026, 1, 1))
    finally:
        await db.dispose()


async def test_append_without_a_database_is_unavailable(unavailable_url: str) -> None:
    db = Database(unavailable_url)
    try:
        with pytest.raises(StoreUnavailable):
            await AuditLog(db).append(entry())
        with pytest.raises(StoreUnavailable):
            await AuditLog(db).for_patient(PATIENT_A)
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    "field", ["actor_id", "patient_id", "on_behalf_of", "actor_care_unit_hsa_id"]
)
@pytest.mark.parametrize("number", ["191212121212", "19121212-1212", "121212-1212", "1212121212"])
def test_identity_numbers_are_refused_as_ids(field: str, number: str) -> None:
    with pytest.raises(ValidationError):
        entry(**{field: number})


def test_emergency_reason_is_required_and_redacted() -> None:
    with pytest.raises(ValidationError):
        entry(emergency=True, purpose="ETREAT")
    with pytest.raises(ValidationError):
        entry(emergency_reason="why")
    made = entry(
        emergency=True,
        purpose="ETREAT",
        emergency_reason="Medvetslös patient 19121212-1212,\x00 ej kontaktbar (tel 121212-1212)",
    )
    assert made.emergency_reason is not None
    assert "1212" not in made.emergency_reason
    assert "\x00" not in made.emergency_reason
    assert made.emergency_reason.startswith("Medvetslös patient [identitetsnummer borttaget]")


@pytest.mark.parametrize(
    "overrides",
    [
        {"returned": {"score": 1.5}},
        {"returned": {"who": "191212121212"}},
        {"returned": {"sources": ["x" * 200]}},
        {"resource_types": ["observation"]},
        {"action": "Read all"},
        {"purpose": "treat"},
        {"outcome": "maybe"},
        {"actor_kind": "robot"},
        {"returned_count": -1},
    ],
)
def test_malformed_entries_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        entry(**overrides)


async def test_a_stuck_writer_makes_appends_fail_fast(postgres_url: str) -> None:
    """Someone holds the append lock: appends give up after lock_timeout, not hang."""
    with connection(postgres_url) as holder:
        holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(APPEND_LOCK)})
        db = Database(postgres_url)
        try:
            started = time.perf_counter()
            with pytest.raises(StoreUnavailable) as raised:
                await AuditLog(db, lock_timeout=0.3).append(entry())
            assert time.perf_counter() - started < 3
            assert "lock timeout" in str(raised.value.__cause__)
        finally:
            await db.dispose()
