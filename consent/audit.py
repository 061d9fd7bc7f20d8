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

Appends are serialised so the chain stays linear with many writers: on PostgreSQL by a
transaction-scoped advisory lock (``pg_advisory_xact_lock``), held from reading the head
to commit; on SQLite by ``BEGIN IMMEDIATE``, which takes the database's single write lock
before the head is read (SQLite's busy timeout, 5 s by default in the ``sqlite3``
module, bounds the wait). The primary key on ``seq`` is the backstop: a second writer
that somehow read the same head fails instead of forking the chain. Database errors
surface as :class:`gateway.errors.ServiceUnavailable`; a caller that cannot log an
access must not serve the data.

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
import hashlib
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson
from pydantic import field_validator, model_validator
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    String,
    Table,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from consent.reasons import IDENTITY_NUMBER_IN_TEXT, MAX_REASON, stated_reason
from gateway.errors import ServiceUnavailable
from store.db import Database

if TYPE_CHECKING:
    from consent.checkpoints import Checkpoint, Checkpointer

log = logging.getLogger(__name__)

_T = TypeVar("_T")

ActorKind = Literal["citizen", "clinician", "integrator", "guardian"]
Outcome = Literal["allowed", "denied", "error"]

#: Actions the gateway logs today; others are accepted if they match ``action``'s pattern.
KNOWN_ACTIONS = frozenset(
    {
        "read",
        "search",
        "everything",
        "consent-create",
        "consent-withdraw",
        "block-create",
        "block-lift",
        "emergency-open",
        "audit-read",
    }
)

#: ``prev_hash`` of the first entry.
GENESIS_HASH = "0" * 64

#: Prefixed to every hashed serialisation, so a later format cannot collide with this one.
HASH_FORMAT = b"samlad-audit-v1\n"

#: The fields covered by ``entry_hash``, fixed for HASH_FORMAT v1. A new column must be
#: added here (and the format version raised), or it would not be tamper-evident.
HASHED_FIELDS = (
    "seq",
    "recorded_at",
    "actor_kind",
    "actor_id",
    "actor_care_unit_hsa_id",
    "actor_care_provider_hsa_id",
    "on_behalf_of",
    "patient_id",
    "action",
    "resource_types",
    "returned_count",
    "returned",
    "purpose",
    "emergency",
    "emergency_reason",
    "outcome",
    "outcome_reason",
    "prev_hash",
)

#: Key of the PostgreSQL advisory lock that serialises appends ("SAMLAD-A").
PG_APPEND_LOCK = 0x53414D4C41442D41

#: Most entries one transaction writes (a bound on its size and on the lock's hold time).
MAX_BATCH = 256

_ID = re.compile(r"^[\x21-\x7e]{1,64}$")
# 10 or 12 digits, optionally with - or + before the last four: a personnummer or
# samordningsnummer, whether valid or not.
_IDENTITY_NUMBER = re.compile(r"^(?:\d{2})?\d{6}[-+]?\d{4}$")
_ACTION = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_PURPOSE = re.compile(r"^[A-Z]{2,16}$")
_REASON_CODE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{0,63}$")
_MAX_RETURNED_BYTES = 4096
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp, always UTC; SQLite returns naive ones, taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("audit timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class AuditEntryBase(SQLModel):
    """What one access was: who, for whom, on whose data, what, why and how it ended."""

    #: ``citizen``, ``clinician``, ``integrator`` or ``guardian``
    actor_kind: ActorKind = Field(sa_type=String(16))
    #: HSA-id (clinician), client_id (integrator), or the opaque unified id (citizen,
    #: guardian); never an identity number.
    actor_id: str = Field(max_length=64)
    actor_care_unit_hsa_id: str | None = Field(default=None, max_length=64)
    actor_care_provider_hsa_id: str | None = Field(default=None, max_length=64)
    #: Whom the actor acted for: an integrator's care provider, a guardian's child
    #: (the child's opaque id).
    on_behalf_of: str | None = Field(default=None, max_length=64)
    #: Opaque unified id of the person whose data was accessed.
    patient_id: str = Field(max_length=64)
    #: ``read``, ``search``, ``everything``, ``consent-create``, … (see KNOWN_ACTIONS)
    action: str = Field(max_length=40)
    #: FHIR resource types asked for or returned.
    resource_types: list[str] = Field(default_factory=list)
    returned_count: int = Field(default=0, ge=0)
    #: Small summary of what was returned, e.g. ``{"types": {"Observation": 3},
    #: "sources": ["region-a"]}``; integers, strings, booleans, lists and objects only.
    returned: dict[str, Any] = Field(default_factory=dict)
    #: PurposeOfUse code (v3-ActReason): ``PATRQT``, ``TREAT``, ``ETREAT``, ``HOPERAT``, …
    purpose: str = Field(max_length=16)
    emergency: bool = False
    #: The clinician's stated reason for emergency access (the only free text).
    emergency_reason: str | None = Field(default=None, max_length=MAX_REASON)
    #: ``allowed``, ``denied`` or ``error``
    outcome: Outcome = Field(sa_type=String(16))
    #: Short machine code, e.g. ``no-consent``, ``blocked``, ``source-unavailable``.
    outcome_reason: str | None = Field(default=None, max_length=64)


class AuditEntryCreate(AuditEntryBase):
    """An entry as the gateway hands it over; seq, time and hashes are added on append.

    Construction validates and raises ``pydantic.ValidationError`` for malformed input,
    notably any id that looks like a personnummer or samordningsnummer.
    """

    @field_validator("actor_id", "patient_id")
    @classmethod
    def _opaque_id(cls, value: str) -> str:
        return _check_id(value)

    @field_validator("actor_care_unit_hsa_id", "actor_care_provider_hsa_id", "on_behalf_of")
    @classmethod
    def _optional_id(cls, value: str | None) -> str | None:
        return None if value is None else _check_id(value)

    @field_validator("action")
    @classmethod
    def _action(cls, value: str) -> str:
        return _check(_ACTION, value, "action")

    @field_validator("purpose")
    @classmethod
    def _purpose(cls, value: str) -> str:
        return _check(_PURPOSE, value, "purpose")

    @field_validator("outcome_reason")
    @classmethod
    def _outcome_reason(cls, value: str | None) -> str | None:
        return None if value is None else _check(_REASON_CODE, value, "outcome_reason")

    @field_validator("resource_types")
    @classmethod
    def _resource_types(cls, value: list[str]) -> list[str]:
        if len(value) > 64:
            raise ValueError("too many resource types")
        return [_check(_RESOURCE_TYPE, item, "resource type") for item in value]

    @field_validator("returned")
    @classmethod
    def _returned(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_summary(value)
        if len(orjson.dumps(value)) > _MAX_RETURNED_BYTES:
            raise ValueError("the returned summary is too large")
        return value

    @field_validator("emergency_reason", mode="before")
    @classmethod
    def _clean_reason(cls, value: object) -> object:
        # The rule the emergency-access record's copy was kept by (InvalidReason is a
        # ValueError, so a failing reason is a ValidationError here).
        return stated_reason(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _emergency_needs_reason(self) -> AuditEntryCreate:
        if self.emergency and not self.emergency_reason:
            raise ValueError("emergency access needs a stated reason")
        if not self.emergency and self.emergency_reason is not None:
            raise ValueError("a reason is only recorded for emergency access")
        return self


class AuditEntry(AuditEntryBase, table=True):
    """A row of the access log. Never updated or deleted (triggers refuse both)."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_patient_seq", "patient_id", "seq"),)

    #: Position in the chain: 1, 2, 3, … without gaps.
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    resource_types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    returned: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64)


class AuditEntryPublic(AuditEntryBase):
    """An entry as read back: for the patient's loggutdrag and for rendering."""

    seq: int
    recorded_at: datetime
    prev_hash: str
    entry_hash: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of checking the whole chain.

    ``checked`` counts the entries read, the failing one included; ``first_broken_seq``
    is the first position where a check failed (for a missing entry, its seq), and
    ``problem`` says which: ``seq-gap``, ``prev-hash-mismatch`` or ``hash-mismatch``.
    ``head_seq`` and ``head_hash`` name the last entry checked, to anchor elsewhere.
    """

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    problem: str | None = None
    head_seq: int | None = None
    head_hash: str | None = None

    def summary(self) -> str:
        """One line for operators."""
        if self.ok:
            if self.head_seq is None:
                return "audit log OK: empty"
            return (
                f"audit log OK: {self.checked} entries, head seq {self.head_seq} "
                f"hash {self.head_hash}"
            )
        return (
            f"audit log BROKEN at seq {self.first_broken_seq} ({self.problem}) "
            f"after checking {self.checked} entries"
        )


AUDIT_TABLE: Table = SQLModel.metadata.tables["audit_entry"]


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """The byte string that ``entry_hash`` is computed over (HASHED_FIELDS only)."""
    body: dict[str, Any] = {}
    for name in HASHED_FIELDS:
        value = fields[name]
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("audit timestamps must be timezone-aware")
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        body[name] = value
    return HASH_FORMAT + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def compute_hash(fields: Mapping[str, Any]) -> str:
    """The hex SHA-256 of an entry's canonical form (its ``entry_hash`` if untampered)."""
    return hashlib.sha256(canonical_bytes(fields)).hexdigest()


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
        giving up with ServiceUnavailable (on SQLite the driver's busy timeout applies).
        ``max_batch``: most entries written in one transaction.
        ``on_appended``: told the seconds each successful append waited for its commit.
        ``checkpoints``: writes signed checkpoints of the head with the entries (see
        :mod:`consent.checkpoints`).
        """
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._db = db
        self._lock_timeout_ms = max(1, round(lock_timeout * 1000))
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
        Raises :class:`ServiceUnavailable` when the entry could not be written (also
        after :meth:`aclose`). A caller cancelled while waiting does not withdraw its
        entry: once queued it is written, with its batch.
        """
        if self._closed:
            raise ServiceUnavailable("the access log is closed")
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
            except ServiceUnavailable:
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
        stopped = ServiceUnavailable("the access log writer stopped")
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
        async with self._db.session() as session:
            if self._db.engine.dialect.name == "sqlite":
                # Take SQLite's write lock before reading the head: with the driver's
                # default (deferred) transactions two writers could read the same head.
                conn = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    result = await work(conn)
                    await conn.exec_driver_sql("COMMIT")
                except Exception:
                    await conn.exec_driver_sql("ROLLBACK")
                    raise
            else:
                conn = await session.connection()
                # The FROM clause runs first, so the timeout governs the wait for the lock,
                # which is released at commit or rollback, after the new rows are visible.
                await conn.execute(
                    text(
                        "SELECT pg_advisory_xact_lock(:key)"
                        " FROM (SELECT set_config('lock_timeout', :timeout, true)) AS settings"
                    ),
                    {"key": PG_APPEND_LOCK, "timeout": f"{self._lock_timeout_ms}ms"},
                )
                result = await work(conn)
                await session.commit()
        return result

    async def checkpoint_if_due(self, *, force: bool = False) -> Checkpoint | None:
        """Write a checkpoint of the head (then export it) if one is due by time, or with
        ``force`` whenever entries arrived since the last; None if none was written.

        Called on a timer, so that the time bound holds when no entries arrive, and at
        shutdown. Raises :class:`ServiceUnavailable` if the database cannot be written.
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
        from consent.checkpoints import CHECKPOINT_TABLE, Checkpoint

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
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntryPublic]:
        """The entries about one patient's data, newest first (highest seq first).

        ``since`` (timezone-aware) keeps entries recorded at or after it; ``limit``
        (1 to 1000) and ``offset`` page through the rest.
        """
        if not 1 <= limit <= 1000 or offset < 0:
            raise ValueError("limit must be 1-1000 and offset not negative")
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        table = AUDIT_TABLE
        query = select(table).where(table.c.patient_id == patient_id)
        if since is not None:
            query = query.where(table.c.recorded_at >= since)
        query = query.order_by(table.c.seq.desc()).limit(limit).offset(offset)
        async with self._db.session() as session:
            conn = await session.connection()
            rows = (await conn.execute(query)).mappings().all()
        return [AuditEntryPublic.model_validate(dict(row)) for row in rows]

    async def verify(self, *, batch_size: int = 1000) -> ChainReport:
        """Recompute the chain in seq order, in batches, and report the first break.

        Detects a changed row (its hash), a removed row (a seq gap or a ``prev_hash``
        that does not match) and an inserted row (the entry after it no longer links).
        """
        table = AUDIT_TABLE
        expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
        async with self._db.session() as session:
            conn = await session.connection()
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


def _link_problem(row: Mapping[Any, Any], expected_seq: int, prev_hash: str) -> str | None:
    if row["seq"] != expected_seq:
        return "seq-gap"
    if row["prev_hash"] != prev_hash:
        return "prev-hash-mismatch"
    if compute_hash(row) != row["entry_hash"]:
        return "hash-mismatch"
    return None


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"malformed {what}")
    return value


def _check_id(value: str) -> str:
    _check(_ID, value, "id")
    if _IDENTITY_NUMBER.fullmatch(value):
        raise ValueError("ids in the audit log must be opaque, never an identity number")
    return value


def _check_summary(value: object, depth: int = 0) -> None:
    if depth > 4:
        raise ValueError("the returned summary is nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("the returned summary has a non-string key")
            _check_summary(key, depth + 1)
            _check_summary(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_summary(item, depth + 1)
    elif isinstance(value, str):
        if len(value) > 128 or IDENTITY_NUMBER_IN_TEXT.search(value):
            raise ValueError("the returned summary holds a long or identifying string")
    elif value is not None and not isinstance(value, bool | int):
        # No floats: they need not survive a JSON column exactly, and the hash must.
        raise ValueError("the returned summary holds only integers, strings and booleans")
