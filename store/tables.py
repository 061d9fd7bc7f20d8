"""The tables of the record and of who may see it: the person index, the cache, the
engagement index, consents, blocks and seals, the access log, what a person reports
themselves. The background work's tables are in :mod:`store.jobs`. Schema changes go
through the Alembic migrations in store/migrations; rows are validated where they are
made (consent/, gateway/), not here.

No identity number is stored in clear: people are named by their opaque unified id, and
the person index keeps the identity number encrypted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import JSON, BigInteger, Column, DateTime, Dialect, Index, String, Table
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

#: The longest free-text reason a row keeps (an emergency opening's stated reason).
MAX_REASON = 1000

ActorKind = Literal["citizen", "clinician", "integrator", "guardian"]
Outcome = Literal["allowed", "denied", "error"]


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a table model (for statements written with SQLAlchemy Core)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def moment(nullable: bool = False) -> Column[datetime]:
    """A timezone-aware timestamp column."""
    return Column(DateTime(timezone=True), nullable=nullable)


def as_utc(moment: datetime) -> datetime:
    """``moment`` read from a ``DateTime(timezone=True)`` column, aware: SQLite hands back
    naive datetimes for them, which were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
        return None if value is None else as_utc(value).astimezone(UTC)


# The person index.


class PersonBase(SQLModel):
    #: Opaque, stable unified patient id (HMAC of the identity number), used in the API.
    id: str = Field(primary_key=True, max_length=64)


class Person(PersonBase, table=True):
    """The person index: maps the opaque id back to the (encrypted) identity number."""

    __tablename__ = "person"

    #: The canonical identity number sealed with AES-GCM (``gateway.envelope``: a format
    #: byte, the nonce, the ciphertext; rows from before the format byte lack it); never
    #: stored in clear.
    identifier_ciphertext: bytes
    first_seen: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


# The record cache.


class CacheChunk(SQLModel, table=True):
    """Part of one source's normalised answer about one person, for one resource type."""

    __tablename__ = "record_cache"

    patient_id: str = Field(primary_key=True, max_length=64)
    source_id: str = Field(primary_key=True, max_length=64)
    resource_type: str = Field(primary_key=True, max_length=64)
    chunk: int = Field(primary_key=True)
    #: A zlib-compressed orjson list of resources sealed with AES-GCM
    #: (``gateway.envelope``: a format byte, the 12-byte nonce, the ciphertext; chunks
    #: from before the format byte lack it).
    body: bytes


class CacheSync(SQLModel, table=True):
    """When one source's answer about one person, for one type, was last refreshed."""

    __tablename__ = "record_cache_sync"

    patient_id: str = Field(primary_key=True, max_length=64)
    source_id: str = Field(primary_key=True, max_length=64)
    resource_type: str = Field(primary_key=True, max_length=64)
    synced_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    full_synced_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    chunks: int


class CacheRefresh(SQLModel, table=True):
    """A background refresh of one person's cached data from one source under way: the
    lease that lets one process of all ask the source (see
    :mod:`gateway.collect.revalidate`). Removed when the refresh ends; one left by a
    process that stopped is taken over once ``until`` has passed."""

    __tablename__ = "record_cache_refresh"

    patient_id: str = Field(primary_key=True, max_length=64)
    source_id: str = Field(primary_key=True, max_length=64)
    #: The process refreshing.
    holder: str = Field(max_length=64)
    until: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class RecordOwner(SQLModel, table=True):
    """Whose record a cached resource is in: one row per (person, source, type, resource),
    written with the cache chunks, so that a read by id finds the person to decide on.

    ``ref`` is a keyed hash of ``{type}/{id}`` (the resource's gateway id): the table
    holds no id in the clear, and tells nothing without the key.
    """

    __tablename__ = "record_owner"

    patient_id: str = Field(primary_key=True, max_length=64)
    source_id: str = Field(primary_key=True, max_length=64)
    resource_type: str = Field(primary_key=True, max_length=64)
    ref: str = Field(primary_key=True, max_length=32, index=True)


# Which sources hold data for whom.


class Engagement(SQLModel, table=True):
    """One person at one source: whether it held data when last asked."""

    __tablename__ = "engagement"

    patient_id: str = Field(primary_key=True, max_length=64)
    source_id: str = Field(primary_key=True, max_length=64)
    has_data: bool
    checked_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class EngagementCheck(SQLModel, table=True):
    """When every source was last asked about one person."""

    __tablename__ = "engagement_check"

    patient_id: str = Field(primary_key=True, max_length=64)
    checked_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


# Consents, blocks and emergency openings.


class ConsentRecord(SQLModel, table=True):
    """The patient lets a care provider or care unit read their unified record."""

    __tablename__ = "consent_record"

    id: str = Field(primary_key=True, max_length=64)
    patient_id: str = Field(index=True, max_length=64)
    #: ``care-provider`` or ``care-unit``; ``proxy`` for a proxy grant (fullmakt)
    grantee_type: str = Field(max_length=32)
    #: The HSA-id of the care provider or unit; of a proxy, their opaque unified id
    #: (never their identity number)
    grantee_hsa_id: str = Field(max_length=64)
    period_start: datetime = Field(sa_column=moment())
    period_end: datetime | None = Field(default=None, sa_column=moment(nullable=True))
    recorded_at: datetime = Field(sa_column=moment())
    withdrawn_at: datetime | None = Field(default=None, sa_column=moment(nullable=True))
    #: A proxy grant's limits: the resource types and record categories it covers,
    #: space-separated (None: the whole record as the person sees it).
    covers: str | None = Field(default=None, max_length=1024)
    #: A proxy grant lets the proxy manage the person's consents, blocks and proxies too.
    manages: bool = Field(default=False)


class BlockRecord(SQLModel, table=True):
    """The patient hides (spärrar) the data of a care provider or care unit from others,
    or from their own guardians only."""

    __tablename__ = "block_record"

    id: str = Field(primary_key=True, max_length=64)
    patient_id: str = Field(index=True, max_length=64)
    #: ``care-provider`` or ``care-unit``
    blocked_type: str = Field(max_length=32)
    blocked_hsa_id: str = Field(max_length=64)
    #: From whom the data is hidden: ``others`` (everyone but the patient and the blocked
    #: provider or unit itself) or ``guardians`` (the patient's guardians only: a guardian
    #: block, vårdnadshavarspärr).
    hidden_from: str = Field(default="others", max_length=16)
    recorded_at: datetime = Field(sa_column=moment())
    lifted_at: datetime | None = Field(default=None, sa_column=moment(nullable=True))


class SealRecord(SQLModel, table=True):
    """The person limits their own online access (and that of everyone acting for them:
    guardians, proxies): a seal of their whole record, a care provider, a care unit or a
    period of record dates, or delayed release of new entries. Clinicians are not bound."""

    __tablename__ = "seal_record"

    id: str = Field(primary_key=True, max_length=64)
    patient_id: str = Field(index=True, max_length=64)
    #: ``record``, ``care-provider``, ``care-unit``, ``period`` or ``delayed-release``
    kind: str = Field(max_length=32)
    #: The care provider or care unit sealed (those kinds only).
    hsa_id: str | None = Field(default=None, max_length=64)
    #: The record dates sealed (``period``): from the first day to the last, inclusive.
    data_start: datetime | None = Field(default=None, sa_column=moment(nullable=True))
    data_end: datetime | None = Field(default=None, sa_column=moment(nullable=True))
    #: Entries newer than this many days are held back (``delayed-release``).
    delay_days: int | None = Field(default=None)
    recorded_at: datetime = Field(sa_column=moment())
    lifted_at: datetime | None = Field(default=None, sa_column=moment(nullable=True))


class EmergencyAccess(SQLModel, table=True):
    """A clinician opened a record without consent, stating a reason (nödåtkomst)."""

    __tablename__ = "emergency_access"

    id: str = Field(primary_key=True, max_length=64)
    patient_id: str = Field(index=True, max_length=64)
    clinician_hsa_id: str = Field(max_length=64)
    care_unit_hsa_id: str = Field(max_length=64)
    care_provider_hsa_id: str = Field(max_length=64)
    reason: str = Field(max_length=1000)
    #: The law's conditions for reading blocked data, when recorded (else blocks hold).
    block_override_reason: str | None = Field(default=None, max_length=1000)
    started_at: datetime = Field(sa_column=moment())
    expires_at: datetime = Field(sa_column=moment())


# The access log and its signed checkpoints.


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


class AuditCheckpoint(SQLModel, table=True):
    """A signed checkpoint as stored next to the chain. Never updated or deleted."""

    __tablename__ = "audit_checkpoint"

    #: The chain position this checkpoint anchors (its head when it was taken).
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    #: ``entry_hash`` of entry ``seq``.
    head_hash: str = Field(max_length=64)
    #: ``seq`` of the checkpoint before (0 for the first).
    prev_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    #: Order-independent digest of the entries ``prev_seq + 1 .. seq`` (see entries_digest).
    entries_digest: str = Field(max_length=64)
    signed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    key_id: str = Field(max_length=64)
    #: Ed25519 signature of :meth:`Checkpoint.payload`, base64url without padding.
    signature: str = Field(max_length=128)


class AuditPrune(SQLModel, table=True):
    """An explicit removal of the access log's oldest entries past their retention:
    entries up to ``through_seq``, a signed checkpoint's head, whose ``head_hash`` the
    first entry kept links to. Append-only, like the log."""

    __tablename__ = "audit_prune"

    through_seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    through_hash: str = Field(max_length=64)
    #: Entries recorded before this were past their retention.
    cutoff: datetime = Field(sa_column=moment())
    pruned_at: datetime = Field(sa_column=moment())


# What a person reports themselves (own measurements, answered forms).


class OwnResource(SQLModel, table=True):
    """One resource a person recorded about themselves, kept as their own source: sealed
    like the cache (``gateway.envelope``, under its own key), named by the person's opaque
    id, deleted when they delete it."""

    __tablename__ = "own_resource"

    #: The resource's id at the own source (its gateway id is ``patient-reported.{id}``).
    id: str = Field(primary_key=True, max_length=64)
    patient_id: str = Field(max_length=64, index=True)
    resource_type: str = Field(max_length=64)
    #: A keyed hash of the client's idempotency key (with the person and type): a retried
    #: create finds the resource it made. None when no key was sent.
    idempotency: str | None = Field(default=None, max_length=64, unique=True)
    created_at: datetime = Field(sa_column=moment())
    #: The resource as served (orjson), sealed with AES-GCM, its row key as associated data.
    body: bytes
