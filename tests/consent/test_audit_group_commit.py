"""Group commit in the access log: batching, failures, cancellation, several processes.

Concurrent appends share a transaction; a caller returns only once its entry is
committed, a failed batch fails its callers and leaves the chain as it was, and a
caller that goes away takes nobody else's entry with it. Each test runs on SQLite and
PostgreSQL (the ``database_url`` fixture).
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from sqlalchemy import event, text

from consent.audit import APPEND_LOCK, AuditLog
from consent.entries import AUDIT_TABLE, AuditEntryCreate, AuditEntryPublic
from store.db import Database, StoreUnavailable, lock_key
from tests.consent.helpers import connection, entry

pytestmark = pytest.mark.anyio

PATIENT = "patg" + "g" * 28


def _rows(database_url: str) -> list[dict[str, Any]]:
    with connection(database_url) as conn:
        result = conn.execute(AUDIT_TABLE.select().order_by(AUDIT_TABLE.c.seq))
        return [dict(row) for row in result.mappings()]


@contextmanager
def _transactions(db: Database) -> Iterator[list[str]]:
    """Records each append transaction the engine starts (its lock statement)."""
    seen: list[str] = []

    def on_execute(*args: Any) -> None:
        statement = args[2]
        if "pg_advisory_xact_lock" in statement or statement == "BEGIN IMMEDIATE":
            seen.append(statement)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def _broken(**overrides: Any) -> AuditEntryCreate:
    """An entry that skipped validation, as a bug could produce one."""
    return AuditEntryCreate.model_construct(**{**entry(PATIENT).model_dump(), **overrides})


def _assert_matches_storage(appended: list[AuditEntryPublic], database_url: str) -> None:
    """What each caller got back is exactly the row stored at its seq."""
    stored = {row["seq"]: row for row in _rows(database_url)}
    for got in appended:
        row = stored[got.seq]
        assert (got.entry_hash, got.prev_hash, got.returned_count) == (
            row["entry_hash"],
            row["prev_hash"],
            row["returned_count"],
        )


async def test_concurrent_appends_share_transactions(database_url: str) -> None:
    count, max_batch = 300, 64
    db = Database(database_url)
    try:
        log = AuditLog(db, max_batch=max_batch)
        with _transactions(db) as transactions:
            appended = await asyncio.gather(
                *(log.append(entry(PATIENT, returned_count=i)) for i in range(count))
            )
        report = await log.verify()
    finally:
        await db.dispose()
    # Each caller got its own entry back, committed, and every entry is there once.
    assert [e.returned_count for e in appended] == list(range(count))
    assert sorted(e.seq for e in appended) == list(range(1, count + 1))
    assert len(_rows(database_url)) == count
    _assert_matches_storage(appended, database_url)
    assert (report.ok, report.checked) == (True, count)
    # All were queued before the writer ran: full batches, none over the cap.
    assert len(transactions) == math.ceil(count / max_batch)
    # Within a batch the chain follows the queue.
    by_seq = sorted(appended, key=lambda e: e.seq)
    assert [e.returned_count for e in by_seq] == list(range(count))
    for before, after in itertools.pairwise(by_seq):
        assert after.prev_hash == before.entry_hash


async def test_a_lone_append_is_written_at_once(database_url: str) -> None:
    """No waiting for company: appends one after another take a transaction each."""
    db = Database(database_url)
    try:
        log = AuditLog(db)
        with _transactions(db) as transactions:
            first = await log.append(entry(PATIENT))
            assert _rows(database_url)[0]["entry_hash"] == first.entry_hash  # committed
            second = await log.append(entry(PATIENT))
    finally:
        await db.dispose()
    assert (first.seq, second.seq) == (1, 2)
    assert len(transactions) == 2


async def test_a_batch_the_database_rejects_fails_every_caller_in_it(database_url: str) -> None:
    db = Database(database_url)
    try:
        log = AuditLog(db)
        before = [await log.append(entry(PATIENT, returned_count=i)) for i in range(2)]
        # One entry breaks the outcome CHECK constraint; it shares a batch with five others.
        async with asyncio.timeout(30):  # each caller hears back, none hangs
            outcomes = await asyncio.gather(
                *(log.append(entry(PATIENT, returned_count=10 + i)) for i in range(3)),
                log.append(_broken(outcome="maybe")),
                *(log.append(entry(PATIENT, returned_count=20 + i)) for i in range(2)),
                return_exceptions=True,
            )
        assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
        # Nothing of the batch was written, and the log goes on from where it was.
        assert [r["seq"] for r in _rows(database_url)] == [1, 2]
        after = await asyncio.gather(*(log.append(entry(PATIENT)) for _ in range(3)))
        report = await log.verify()
    finally:
        await db.dispose()
    assert sorted(e.seq for e in after) == [3, 4, 5]
    assert min(after, key=lambda e: e.seq).prev_hash == before[-1].entry_hash
    assert (report.ok, report.checked) == (True, 5)


async def test_an_entry_that_cannot_be_hashed_fails_alone(database_url: str) -> None:
    db = Database(database_url)
    try:
        log = AuditLog(db)
        outcomes = await asyncio.gather(
            log.append(entry(PATIENT, returned_count=1)),
            log.append(_broken(returned={"sources": {"a set"}})),
            log.append(entry(PATIENT, returned_count=2)),
            return_exceptions=True,
        )
        report = await log.verify()
    finally:
        await db.dispose()
    good = [o for o in outcomes if isinstance(o, AuditEntryPublic)]
    assert isinstance(outcomes[1], orjson.JSONEncodeError)
    assert [(e.seq, e.returned_count) for e in good] == [(1, 1), (2, 2)]
    assert (report.ok, report.checked) == (True, 2)


async def test_appends_to_an_unreachable_database_all_fail(unavailable_url: str) -> None:
    db = Database(unavailable_url)
    try:
        log = AuditLog(db, max_batch=8)
        async with asyncio.timeout(30):  # every caller hears back; none is left hanging
            outcomes = await asyncio.gather(
                *(log.append(entry(PATIENT)) for _ in range(20)), return_exceptions=True
            )
            assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
            with pytest.raises(StoreUnavailable):  # a fresh writer, failing the same way
                await log.append(entry(PATIENT))
    finally:
        await db.dispose()


async def test_a_failed_lock_wait_fails_the_batch_and_the_log_recovers(postgres_url: str) -> None:
    """Another process holds the append lock too long: the waiting batch gets 503s."""
    db = Database(postgres_url)
    try:
        log = AuditLog(db, lock_timeout=0.3)
        with connection(postgres_url) as holder:
            holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(APPEND_LOCK)})
            async with asyncio.timeout(30):
                outcomes = await asyncio.gather(
                    *(log.append(entry(PATIENT)) for _ in range(10)), return_exceptions=True
                )
        assert all(
            isinstance(o, StoreUnavailable) and "lock timeout" in str(o.__cause__) for o in outcomes
        ), outcomes
        assert _rows(postgres_url) == []
        appended = await asyncio.gather(*(log.append(entry(PATIENT)) for _ in range(10)))
        assert sorted(e.seq for e in appended) == list(range(1, 11))
        assert (await log.verify()).ok
    finally:
        await db.dispose()
        # postgres_url is the session's database, which no fixture empties after us.
        with connection(postgres_url) as conn:
            conn.execute(text(f"TRUNCATE {AUDIT_TABLE.name}"))


async def test_cancelled_callers_do_not_disturb_the_others(database_url: str) -> None:
    db = Database(database_url)
    try:
        log = AuditLog(db, max_batch=16)
        first_wave = [
            asyncio.create_task(log.append(entry(PATIENT, returned_count=i))) for i in range(40)
        ]
        await asyncio.sleep(0)  # all queued; the writer has not run yet
        # The caller that started the writer, and others, go away while queued.
        queued_cancelled = {0, 1, 7, 20, 39}
        for i in queued_cancelled:
            first_wave[i].cancel()
        await first_wave[2]  # its batch is committed; the writer is on the next
        second_wave = [
            asyncio.create_task(log.append(entry(PATIENT, returned_count=100 + i)))
            for i in range(20)
        ]
        await asyncio.sleep(0)
        late_cancelled = {30, 31, 35}
        for i in late_cancelled:
            first_wave[i].cancel()
        async with asyncio.timeout(30):  # a broken writer would leave callers hanging
            outcomes = await asyncio.gather(*first_wave, *second_wave, return_exceptions=True)
        survivors = [o for o in outcomes if isinstance(o, AuditEntryPublic)]
        # Everyone not cancelled got a committed entry; a cancelled caller's entry was
        # written all the same, since it was queued (at most it lost the race to be told).
        assert not [o for o in outcomes if isinstance(o, BaseException) and not _cancelled(o)]
        for i in queued_cancelled:
            assert first_wave[i].cancelled()
        assert len(survivors) >= 60 - len(queued_cancelled) - len(late_cancelled)
        later = await log.append(entry(PATIENT, returned_count=999))
        await log.aclose()
        report = await log.verify()
    finally:
        await db.dispose()
    rows = _rows(database_url)
    assert sorted(r["returned_count"] for r in rows) == [
        *range(40),
        *range(100, 120),
        999,
    ]
    assert later.seq == 61
    _assert_matches_storage(survivors, database_url)
    assert (report.ok, report.checked) == (True, 61)


def _cancelled(outcome: BaseException) -> bool:
    return isinstance(outcome, asyncio.CancelledError)


async def test_aclose_writes_what_is_queued_then_refuses(database_url: str) -> None:
    db = Database(database_url)
    try:
        log = AuditLog(db)
        callers = [asyncio.create_task(log.append(entry(PATIENT))) for _ in range(30)]
        await asyncio.sleep(0)
        for caller in callers:  # as at shutdown: the requests are gone, their entries not
            caller.cancel()
        async with asyncio.timeout(30):
            await log.aclose()
        assert len(_rows(database_url)) == 30
        with pytest.raises(StoreUnavailable):
            await log.append(entry(PATIENT))
        await log.aclose()  # twice is fine
        assert (await log.verify()).ok
    finally:
        await db.dispose()
    assert len(_rows(database_url)) == 30


async def test_a_stopped_writer_fails_its_callers_and_a_new_one_starts(database_url: str) -> None:
    """As when the event loop closes under it: nobody waits forever, nothing half-done."""
    db = Database(database_url)
    try:
        log = AuditLog(db)
        callers = [asyncio.create_task(log.append(entry(PATIENT))) for _ in range(5)]
        await asyncio.sleep(0)
        writer = log._writer
        assert writer is not None
        writer.cancel()
        async with asyncio.timeout(30):
            outcomes = await asyncio.gather(*callers, return_exceptions=True)
        assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
        assert _rows(database_url) == []
        assert (await log.append(entry(PATIENT))).seq == 1
    finally:
        await db.dispose()


async def test_two_logs_on_one_database_make_one_chain(database_url: str) -> None:
    """Two AuditLogs with their own engines, as two gateway processes have."""
    per_log, max_batch = 120, 8
    dbs = [Database(database_url), Database(database_url)]
    try:
        logs = [AuditLog(db, max_batch=max_batch) for db in dbs]
        for log in logs:  # both connected before they race, so both race from the start
            assert (await log.verify()).ok
        appended = await asyncio.gather(
            *(
                logs[i % 2].append(entry(PATIENT, returned_count=1000 * (i % 2) + i // 2))
                for i in range(2 * per_log)
            )
        )
        report = await logs[0].verify()
    finally:
        for db in dbs:
            await db.dispose()
    assert sorted(e.seq for e in appended) == list(range(1, 2 * per_log + 1))
    _assert_matches_storage(appended, database_url)
    assert (report.ok, report.checked) == (True, 2 * per_log)
    rows = _rows(database_url)
    owners = [r["returned_count"] // 1000 for r in rows]
    assert owners.count(0) == owners.count(1) == per_log
    # Each log kept its own order within the chain.
    for owner in (0, 1):
        mine = [r["returned_count"] % 1000 for r in rows if r["returned_count"] // 1000 == owner]
        assert mine == list(range(per_log))
    if database_url.startswith("postgresql"):
        # The lock queue is fair: the two writers took turns, batch by batch.
        turns = sum(1 for a, b in itertools.pairwise(owners) if a != b)
        assert turns >= 4
