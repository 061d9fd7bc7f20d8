"""The access log (loggutdrag): an append-only, hash-chained record of every data access.

Each entry has a ``seq`` (1, 2, 3, … without gaps) and an ``entry_hash``: the SHA-256 of a
canonical serialisation of all its other fields, ``prev_hash`` (the hash of entry
``seq - 1``; 64 zeros for the first) included. Changing, removing or inserting a row
in the middle therefore breaks the chain, and :meth:`AuditLog.verify` finds where.

Append-only is enforced three times over: this module offers no update or delete; the
migration (0003) adds triggers that reject ``UPDATE`` and ``DELETE`` on ``audit_entry``
on both databases; and the chain detects what a database superuser can still do around
the triggers (``ALTER TABLE … DISABLE TRIGGER``, ``session_replication_role = replica``,
``TRUNCATE``, editing the SQLite file). A chain cannot, on its own, detect the newest
entries being cut off, or a whole chain being recomputed: signed checkpoints of the head,
kept outside the database too, do (:mod:`consent.checkpoints`; written here, with the
entries, under the same lock).

Only opaque ids and HSA-ids are stored: never an identity number (``AuditEntryCreate``
refuses values that look like one, and redacts them from the emergency reason, the one
free-text field).

Appends are serialised so the chain stays linear with many writers: each batch is one
``Database.write`` under the named lock :data:`APPEND_LOCK`, held from reading the head
to commit (on PostgreSQL a transaction-scoped advisory lock, waited for at most
``lock_timeout``; on SQLite the database's single write lock, taken before the head is
read). The primary key on ``seq`` is the backstop: a second writer that somehow read the
same head fails instead of forking the chain. Database errors surface as
:class:`~store.db.StoreUnavailable`, and a closed log as
:class:`~consent.errors.AccessLogUnavailable`; a caller that cannot log an access must
not serve the data.

Within one process appends are group-committed, since a lock, a head read and a commit
per entry cap the whole gateway at a few hundred logged reads per second: concurrent
callers queue their entries, and one writer task writes everything queued so far (at
most ``max_batch``) in one transaction under one lock, then wakes each caller. There is
no timer: a lone entry is written at once, and a batch is whatever arrived while the
previous one was being written. A caller returns only once its entry is committed; if
the batch fails, every caller in it gets the error. Across processes each batch takes
the lock like a single append did, so the chain stays one. Statements an entry is
appended ``together_with`` (the consent, block or emergency opening it records) run in
its batch's transaction: they are committed with the entry or not at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Executable

from consent.checkpoints import CHECKPOINT_TABLE, Checkpoint, Checkpointer
from consent.entries import (
    _EPOCH,
    AUDIT_TABLE,
    GENESIS_HASH,
    AuditEntryCreate,
    AuditEntryPublic,
    ChainReport,
    _link_problem,
    canonical_bytes,
    chain_start,
    compute_hash,
)
from consent.errors import AccessLogUnavailable
from store.db import Database, StoreUnavailable

log = logging.getLogger(__name__)

_T = TypeVar("_T")


#: The write lock appends take (``Database.write``): one chain, however many writers.
APPEND_LOCK = "audit-log-append"

#: Most entries one transaction writes (a bound on its size and on the lock's hold time).
MAX_BATCH = 256


@dataclass(eq=False, slots=True)
class _Queued:
    """An entry waiting for the writer, and the future its caller awaits."""

    fields: dict[str, Any]
    stored: asyncio.Future[dict[str, Any]]
    #: Statements committed with the entry (see :meth:`AuditLog.append`).
    together_with: Sequence[Executable] = ()


class AuditLog:
    """The access log on a :class:`Database`: append, read a patient's entries, verify.

    There is deliberately no way to change or remove an entry.
    """

    def __init__(
        self,
        db: Database,
        *,
        lock_timeout: float = 10.0,
        max_batch: int = MAX_BATCH,
        on_appended: Callable[[float], None] | None = None,
        checkpoints: Checkpointer | None = None,
    ) -> None:
        """``lock_timeout``: seconds a write waits for the PostgreSQL append lock before
        giving up with StoreUnavailable (on SQLite the driver's busy timeout applies).
        ``max_batch``: most entries written in one transaction.
        ``on_appended``: told the seconds each successful append waited for its commit.
        ``checkpoints``: writes signed checkpoints of the head with the entries (see
        :mod:`consent.checkpoints`).
        """
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._db = db
        self._lock_timeout = lock_timeout
        self._max_batch = max_batch
        self._queue: deque[_Queued] = deque()
        self._batch: list[_Queued] = []  # the entries being written
        # Runs while entries are queued and ends when the queue is empty; it belongs to
        # the log, not to the request that happened to start it.
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._on_appended = on_appended
        self._checkpoints = checkpoints
        self._unpublished: list[Checkpoint] = []  # committed, not yet exported
        # Exports (an fsync each) off the writer's path: the next batch need not wait.
        self._exporter: asyncio.Task[None] | None = None

    async def append(
        self,
        entry: AuditEntryCreate,
        *,
        together_with: Sequence[Executable] = (),
    ) -> AuditEntryPublic:
        """Append ``entry`` at the head of the chain and return it as stored, once committed.

        ``together_with``: statements writing the record the entry is about, run first in
        the entry's own transaction, so both are committed or neither is (a consent, a
        block or an emergency opening and its entry: :class:`consent.store.ConsentStore`).

        Safe with any number of concurrent writers, in this and other processes.
        Raises :class:`~store.db.StoreUnavailable` when the entry could not be written (also
        after :meth:`aclose`). A caller cancelled while waiting does not withdraw its
        entry: once queued it is written, with its batch.
        """
        if self._closed:
            raise AccessLogUnavailable("the access log is closed")
        fields = entry.model_dump()
        # An entry that cannot be hashed fails here, alone, rather than its whole batch.
        canonical_bytes({**fields, "seq": 1, "recorded_at": _EPOCH, "prev_hash": GENESIS_HASH})
        queued = _Queued(fields, asyncio.get_running_loop().create_future(), together_with)
        started = time.perf_counter()
        self._queue.append(queued)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued(), name="audit-log-writer")
            self._writer.add_done_callback(self._writer_stopped)
        stored = await queued.stored
        if self._on_appended is not None:
            self._on_appended(time.perf_counter() - started)
        return AuditEntryPublic.model_validate(stored)

    async def aclose(self) -> None:
        """Refuse further appends and wait until every queued entry is written or failed.

        Call it before disposing of the database.
        """
        self._closed = True
        if self._writer is not None:
            await asyncio.wait({self._writer})  # (cancelling aclose leaves the writer be)
        if self._checkpoints is not None:
            # A clean shutdown anchors the last entries now rather than leave them to the
            # next start's bound.
            try:
                await self.checkpoint_if_due(force=True)
            except StoreUnavailable:
                log.error("no audit checkpoint at shutdown: the database is unavailable")
        if self._exporter is not None:
            await asyncio.wait({self._exporter})

    async def _write_queued(self) -> None:
        """The writer: write the queue in batches until it is empty."""
        while self._queue:
            self._batch = [
                self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))
            ]
            try:
                rows = await self._write(
                    [queued.fields for queued in self._batch],
                    [statement for queued in self._batch for statement in queued.together_with],
                )
            except Exception as exc:  # noqa: BLE001 - handed to each caller
                for queued in self._batch:
                    if not queued.stored.done():
                        queued.stored.set_exception(exc)
            else:
                for queued, row in zip(self._batch, rows, strict=True):
                    if not queued.stored.done():  # else its caller was cancelled
                        queued.stored.set_result(row)
            self._batch = []
            self._export_checkpoints()
        # Here, not in a callback: an entry queued from now on must start a new writer.
        self._writer = None

    def _writer_stopped(self, writer: asyncio.Task[None]) -> None:
        """If the writer ended early (cancelled as its event loop closed, or a bug), fail
        everyone still waiting rather than leave them hanging."""
        if self._writer is not writer:
            return  # it ended normally, having cleared itself
        self._writer = None
        if not writer.cancelled() and (error := writer.exception()) is not None:
            log.error("the access log writer failed: %s", type(error).__name__)
        stopped = AccessLogUnavailable("the access log writer stopped")
        for queued in [*self._batch, *self._queue]:
            if not queued.stored.done():
                queued.stored.set_exception(stopped)
        self._batch = []
        self._queue.clear()

    async def _write(
        self,
        batch: Sequence[dict[str, Any]],
        together_with: Sequence[Executable] = (),
    ) -> list[dict[str, Any]]:
        """Write ``batch`` at the head of the chain, in order, in one transaction, with
        the rows ``together_with`` (inserted first, so a failing entry takes them back)
        and a checkpoint if one falls due."""

        async def insert_batch(
            conn: AsyncConnection,
        ) -> tuple[list[dict[str, Any]], Checkpoint | None]:
            await _run_statements(conn, together_with)
            rows = await _insert_at_head(conn, batch)
            if self._checkpoints is None:
                return rows, None
            return rows, await self._checkpoints.write_if_due(conn, rows)

        rows, checkpoint = await self._under_append_lock(insert_batch)
        if checkpoint is not None:  # committed: only now may it be exported
            self._unpublished.append(checkpoint)
        return rows

    async def _under_append_lock(self, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run ``work`` in one transaction that holds the append lock, and commit."""
        return await self._db.write(work, lock=APPEND_LOCK, lock_timeout=self._lock_timeout)

    async def checkpoint_if_due(self, *, force: bool = False) -> Checkpoint | None:
        """Write a checkpoint of the head (then export it) if one is due by time, or with
        ``force`` whenever entries arrived since the last; None if none was written.

        Called on a timer, so that the time bound holds when no entries arrive, and at
        shutdown. Raises :class:`~store.db.StoreUnavailable` if the database cannot be written.
        """
        checkpointer = self._checkpoints
        if checkpointer is None:
            return None

        async def write(conn: AsyncConnection) -> Checkpoint | None:
            return await checkpointer.write_if_due(conn, force=force)

        checkpoint = await self._under_append_lock(write)
        if checkpoint is not None:
            self._unpublished.append(checkpoint)
            self._export_checkpoints()
        return checkpoint

    async def latest_checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint written, if any (what a reading of the log is under)."""

        async with self._db.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(CHECKPOINT_TABLE).order_by(CHECKPOINT_TABLE.c.seq.desc()).limit(1)
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else Checkpoint.from_row(row)

    def _export_checkpoints(self) -> None:
        """Hand committed checkpoints to the sinks, in order, in a task of their own."""
        if self._unpublished and self._exporter is None:
            self._exporter = asyncio.create_task(
                self._export_queued(), name="audit-checkpoint-export"
            )

    async def _export_queued(self) -> None:
        try:
            while self._unpublished and self._checkpoints is not None:
                await self._checkpoints.publish(self._unpublished.pop(0))
        finally:
            self._exporter = None

    async def _append_unbatched(self, entry: AuditEntryCreate) -> AuditEntryPublic:
        """One entry in its own transaction, past the queue: append before group commit.

        Only for ``bench/bench_audit.py``, to measure both side by side.
        """
        (row,) = await self._write([entry.model_dump()])
        return AuditEntryPublic.model_validate(row)

    async def for_patient(
        self,
        patient_id: str,
        *,
        since: datetime | None = None,
        upto: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntryPublic]:
        """The entries about one patient's data, newest first (highest seq first).

        ``since`` (timezone-aware) keeps entries recorded at or after it, ``upto`` those
        at or before that seq (what a reading that started there saw, however many
        entries were appended since); ``limit`` (1 to 1000) and ``offset`` page through
        the rest.
        """
        if not 1 <= limit <= 1000 or offset < 0:
            raise ValueError("limit must be 1-1000 and offset not negative")
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        table = AUDIT_TABLE
        query = select(table).where(table.c.patient_id == patient_id)
        if since is not None:
            query = query.where(table.c.recorded_at >= since)
        if upto is not None:
            query = query.where(table.c.seq <= upto)
        query = query.order_by(table.c.seq.desc()).limit(limit).offset(offset)
        async with self._db.session() as session:
            conn = await session.connection()
            rows = (await conn.execute(query)).mappings().all()
        return [AuditEntryPublic.model_validate(dict(row)) for row in rows]

    async def keys_for_patient(
        self, patient_id: str, *, upto: int | None = None
    ) -> list[tuple[int, datetime]]:
        """(seq, recorded_at) of every entry about one patient's data at or before seq
        ``upto``, newest first: a tenth of the cost of reading the entries themselves."""
        table = AUDIT_TABLE
        query = select(table.c.seq, table.c.recorded_at).where(table.c.patient_id == patient_id)
        if upto is not None:
            query = query.where(table.c.seq <= upto)
        async with self._db.session() as session:
            conn = await session.connection()
            rows = (await conn.execute(query.order_by(table.c.seq.desc()))).all()
        return [(int(row.seq), row.recorded_at) for row in rows]

    async def by_seq(self, patient_id: str, seqs: Sequence[int]) -> list[AuditEntryPublic]:
        """The entries about one patient's data with these seqs, in the order given (at
        most 1000; a seq of another patient's entry is left out)."""
        if len(seqs) > 1000:
            raise ValueError("at most 1000 entries at a time")
        if not seqs:
            return []
        table = AUDIT_TABLE
        query = select(table).where(table.c.patient_id == patient_id, table.c.seq.in_(seqs))
        async with self._db.session() as session:
            conn = await session.connection()
            rows = (await conn.execute(query)).mappings().all()
        found = {int(row["seq"]): AuditEntryPublic.model_validate(dict(row)) for row in rows}
        return [found[seq] for seq in seqs if seq in found]

    async def verify(self, *, batch_size: int = 1000) -> ChainReport:
        """Recompute the chain in seq order, in batches, and report the first break.

        Detects a changed row (its hash), a removed row (a seq gap or a ``prev_hash``
        that does not match) and an inserted row (the entry after it no longer links).
        """
        table = AUDIT_TABLE
        checked = 0
        async with self._db.session() as session:
            conn = await session.connection()
            # After a prune (consent.retention), the chain kept starts where it left off.
            expected_seq, prev_hash = await chain_start(conn)
            while True:
                query = select(table).order_by(table.c.seq).limit(batch_size)
                if checked:
                    query = query.where(table.c.seq >= expected_seq)
                # (The first batch has no lower bound: a row below seq 1 must show too.)
                rows = (await conn.execute(query)).mappings().all()
                if not rows:
                    break
                for row in rows:
                    checked += 1
                    problem = _link_problem(row, expected_seq, prev_hash)
                    if problem is not None:
                        return ChainReport(
                            ok=False,
                            checked=checked,
                            first_broken_seq=expected_seq if problem == "seq-gap" else row["seq"],
                            problem=problem,
                            head_seq=expected_seq - 1 or None,
                            head_hash=None if expected_seq == 1 else prev_hash,
                        )
                    expected_seq, prev_hash = row["seq"] + 1, row["entry_hash"]
        if checked == 0:
            return ChainReport(ok=True, checked=0)
        return ChainReport(ok=True, checked=checked, head_seq=expected_seq - 1, head_hash=prev_hash)


async def _run_statements(conn: AsyncConnection, statements: Sequence[Executable]) -> None:
    for statement in statements:
        await conn.execute(statement)


async def _insert_at_head(
    conn: AsyncConnection, batch: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert the next entries, chained in order; the caller holds the append lock."""
    table = AUDIT_TABLE
    head = (
        await conn.execute(
            select(table.c.seq, table.c.entry_hash, table.c.recorded_at)
            .order_by(table.c.seq.desc())
            .limit(1)
        )
    ).first()
    seq, prev_hash = (1, GENESIS_HASH) if head is None else (head.seq + 1, head.entry_hash)
    # Under the lock, and never before the previous entry (clocks of several hosts can
    # disagree), so that recorded_at order is seq order and ``since`` filters agree.
    now = datetime.now(UTC)
    if head is not None and head.recorded_at > now:
        now = head.recorded_at
    rows = []
    for fields in batch:
        row = {**fields, "seq": seq, "recorded_at": now, "prev_hash": prev_hash}
        row["entry_hash"] = prev_hash = compute_hash(row)
        rows.append(row)
        seq += 1
    await conn.execute(insert(table), rows)
    return rows
