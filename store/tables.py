"""Every table the gateway keeps, in one place. Schema changes go through the Alembic
migrations in store/migrations; rows are validated where they are made (consent/,
gateway/), not here.

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


def _moment(nullable: bool = False) -> Column[datetime]:
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
    #: ``care-provider`` or ``care-unit``
    grantee_type: str = Field(max_length=32)
    grantee_hsa_id: str = Field(max_length=64)
    period_start: datetime = Field(sa_column=_moment())
    period_end: datetime | None = Field(default=None, sa_column=_moment(nullable=True))
    recorded_at: datetime = Field(sa_column=_moment())
    withdrawn_at: datetime | None = Field(default=None, sa_column=_moment(nullable=True))


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
    recorded_at: datetime = Field(sa_column=_moment())
    lifted_at: datetime | None = Field(default=None, sa_column=_moment(nullable=True))


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
    started_at: datetime = Field(sa_column=_moment())
    expires_at: datetime = Field(sa_column=_moment())


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


# Bulk Data exports.


class ExportJob(SQLModel, table=True):
    """One Bulk Data export an integrator asked for (``$export``), and how far it got.

    The patients are fixed when it is asked for (those whose consent names the care
    provider then); each is decided on again when their data is read. ``done`` counts the
    patients whose files are written, so a job taken over by another process (or after a
    restart) goes on from there. ``claimed_by`` names the process running it; its
    ``heartbeat_at`` says it still does.
    """

    __tablename__ = "export_job"

    id: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=64, index=True)
    care_provider_hsa_id: str = Field(max_length=64)
    #: The kick-off token's scopes: what each patient's read is decided with.
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: The Group exported (None: ``Patient/$export``).
    group_id: str | None = Field(default=None, max_length=64)
    #: The kick-off request's URL (no identity number: only types and ``_since``).
    request_url: str = Field(max_length=2000)
    types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    since: datetime | None = Field(default=None, sa_column=_moment(nullable=True))
    #: The ``_typeFilter`` values (``Type?query``): of a type named, only what one matches.
    type_filters: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: Opaque unified ids of the patients to export, in order.
    patients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    done: int = 0
    #: ``running``, ``complete`` or ``failed``
    status: str = Field(max_length=16)
    #: Why a job failed, safe to show its client.
    error: str | None = Field(default=None, max_length=200)
    transaction_time: datetime = Field(sa_column=_moment())
    expires_at: datetime = Field(sa_column=_moment())
    claimed_by: str | None = Field(default=None, max_length=64)
    heartbeat_at: datetime | None = Field(default=None, sa_column=_moment(nullable=True))


class ExportFile(SQLModel, table=True):
    """One finished NDJSON file of an export: written whole, with the job's progress."""

    __tablename__ = "export_file"

    job_id: str = Field(primary_key=True, max_length=64)
    #: The file's name in its URL, e.g. ``Observation-2.ndjson``.
    name: str = Field(primary_key=True, max_length=80)
    #: The resources' type; ``OperationOutcome`` for an error file.
    resource_type: str = Field(max_length=64)
    count: int
    #: The zlib-compressed NDJSON sealed with AES-GCM (``gateway.envelope``).
    body: bytes


class Subscription(SQLModel, table=True):
    """A topic-based subscription of an integrator (R4 Subscriptions Backport IG): what it
    is told of, where, and how its deliveries went. Only its client (``client_id`` and
    care provider) sees it; each delivery is decided on with its ``scopes`` when sent."""

    __tablename__ = "subscription"

    id: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=64, index=True)
    care_provider_hsa_id: str = Field(max_length=64)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: The topic's canonical URL (``fhir_profiles.subscriptions.TOPICS``).
    topic: str = Field(max_length=200)
    #: The opaque unified id of the patient it is filtered to; None: every patient.
    patient_id: str | None = Field(default=None, max_length=64, index=True)
    endpoint: str = Field(max_length=2000)
    #: ``empty``, ``id-only`` or ``full-resource``.
    payload: str = Field(max_length=16)
    #: The ``Name: value`` lines sent with every notification (they may hold the
    #: endpoint's credentials), as JSON sealed with AES-GCM (``gateway.envelope``);
    #: None: no headers.
    headers: bytes | None = None
    heartbeat_seconds: int | None = None
    timeout_seconds: int
    #: ``requested``, ``active``, ``error`` or ``off``.
    status: str = Field(max_length=16)
    #: Events numbered so far (``events-since-subscription-start``).
    events: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    #: The last delivery failure, safe to show its client.
    error: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_column=_moment())
    #: When a notification last reached the endpoint (for heartbeats).
    sent_at: datetime | None = Field(default=None, sa_column=_moment(nullable=True))


class SubscriptionEvent(SQLModel, table=True):
    """A change the gateway learnt of: a resource of a topic's type new or changed in a
    person's cached record. Written in the cache write's own transaction (an outbox);
    turned into deliveries, and removed, by the notifier."""

    __tablename__ = "subscription_event"

    id: str = Field(primary_key=True, max_length=32)
    patient_id: str = Field(max_length=64)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=200)
    recorded_at: datetime = Field(sa_column=_moment())


class SubscriptionDelivery(SQLModel, table=True):
    """One notification to send to a subscription's endpoint: a handshake, a heartbeat
    or an event; retried with backoff until sent or given up."""

    __tablename__ = "subscription_delivery"

    id: str = Field(primary_key=True, max_length=32)
    subscription_id: str = Field(max_length=64, index=True)
    #: ``handshake``, ``heartbeat`` or ``event-notification``.
    kind: str = Field(max_length=32)
    patient_id: str | None = Field(default=None, max_length=64)
    resource_type: str | None = Field(default=None, max_length=64)
    resource_id: str | None = Field(default=None, max_length=200)
    event_number: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    attempts: int = 0
    due_at: datetime = Field(sa_column=_moment())
    recorded_at: datetime = Field(sa_column=_moment())


class WriteRequest(SQLModel, table=True):
    """A write to the system that owns it (a booking, a cancellation, a renewal request,
    a message): the outbox the write worker delivers from, and what a retried request
    with the same idempotency key is answered from. The body is personal data: sealed."""

    __tablename__ = "write_request"

    id: str = Field(primary_key=True, max_length=32)
    #: A keyed hash of who asked and their idempotency key: one write per key.
    idempotency_key: str = Field(max_length=64, unique=True)
    #: A hash of the request (interaction, target and body): a key reused for another
    #: request is refused.
    request_digest: str = Field(max_length=64)
    #: A keyed hash of who asked: only they may read its status.
    asked_by: str = Field(max_length=64)
    patient_id: str = Field(max_length=64, index=True)
    source_id: str = Field(max_length=64)
    care_unit_hsa_id: str = Field(max_length=64)
    #: ``create`` or ``update``.
    interaction: str = Field(max_length=16)
    resource_type: str = Field(max_length=64)
    #: The owner's own id of what an update changes (None for a create).
    target_id: str | None = Field(default=None, max_length=200)
    #: The resource to send, as the gateway serves it, sealed (``gateway.envelope``).
    body: bytes
    #: ``queued``, ``delivered``, ``refused`` or ``failed`` (given up).
    status: str = Field(max_length=16, index=True)
    attempts: int = 0
    due_at: datetime = Field(sa_column=_moment())
    recorded_at: datetime = Field(sa_column=_moment())
    done_at: datetime | None = Field(default=None, sa_column=_moment(nullable=True))
    #: The owner's answer: its HTTP status, and the id it gave what it created.
    answer_status: int | None = None
    result_id: str | None = Field(default=None, max_length=200)
    #: Why the last attempt failed or was refused, safe to show who asked.
    error: str | None = Field(default=None, max_length=200)
