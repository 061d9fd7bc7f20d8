"""The tables of the work the gateway does in the background: Bulk Data exports, the
deliveries of integrators' subscriptions, the person's notices, and the writes to the
systems that own what is written. Schema changes go through the Alembic migrations in
store/migrations, like those of :mod:`store.tables`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from store.tables import moment

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
    since: datetime | None = Field(default=None, sa_column=moment(nullable=True))
    #: The ``_typeFilter`` values (``Type?query``): of a type named, only what one matches.
    type_filters: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: Opaque unified ids of the patients to export, in order.
    patients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    done: int = 0
    #: ``running``, ``complete`` or ``failed``
    status: str = Field(max_length=16)
    #: Why a job failed, safe to show its client.
    error: str | None = Field(default=None, max_length=200)
    transaction_time: datetime = Field(sa_column=moment())
    expires_at: datetime = Field(sa_column=moment())
    claimed_by: str | None = Field(default=None, max_length=64)
    heartbeat_at: datetime | None = Field(default=None, sa_column=moment(nullable=True))


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
    created_at: datetime = Field(sa_column=moment())
    #: When a notification last reached the endpoint (for heartbeats).
    sent_at: datetime | None = Field(default=None, sa_column=moment(nullable=True))


class SubscriptionEvent(SQLModel, table=True):
    """A change the gateway learnt of: a resource of a topic's type new or changed in a
    person's cached record. Written in the cache write's own transaction (an outbox);
    turned into deliveries, and removed, by the notifier."""

    __tablename__ = "subscription_event"

    id: str = Field(primary_key=True, max_length=32)
    patient_id: str = Field(max_length=64)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=200)
    recorded_at: datetime = Field(sa_column=moment())


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
    due_at: datetime = Field(sa_column=moment())
    recorded_at: datetime = Field(sa_column=moment())


class NoticeSetting(SQLModel, table=True):
    """What a person has asked to be told of, and where (opt-in; no row: nothing)."""

    __tablename__ = "notice_setting"

    patient_id: str = Field(primary_key=True, max_length=64)
    #: The kinds chosen: ``lab-result``, ``note``, ``appointment``, ``access``.
    kinds: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: The e-mail address and the webhook URL, each sealed with AES-GCM
    #: (``gateway.envelope``); None: that channel is not used.
    email: bytes | None = None
    webhook: bytes | None = None
    #: Quiet hours in Swedish local time, minutes after midnight; None: none.
    quiet_start: int | None = None
    quiet_end: int | None = None
    updated_at: datetime = Field(sa_column=moment())
    #: Who chose them when it was not the person (a guardian, a proxy): their identifier,
    #: sealed like the contacts; None: the person. Notices stop when that standing ends.
    setter: bytes | None = None


class Notice(SQLModel, table=True):
    """Something a person asked to be told of (the outbox): written in the transaction
    that records it (a cache write, an access-log entry), one row per kind and ``ref``
    while it waits, turned into messages by the notice worker."""

    __tablename__ = "notice"
    __table_args__ = (Index("ux_notice_ref", "patient_id", "kind", "ref", unique=True),)

    id: str = Field(primary_key=True, max_length=32)
    patient_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    #: What makes two notices one (``Type/id``; the reader of an access).
    ref: str = Field(max_length=200)
    recorded_at: datetime = Field(sa_column=moment())


class NoticeMessage(SQLModel, table=True):
    """One message to send on one channel: the notices of a kind batched; retried with
    backoff until sent or given up."""

    __tablename__ = "notice_message"

    id: str = Field(primary_key=True, max_length=32)
    patient_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    #: ``email`` or ``webhook``.
    channel: str = Field(max_length=16)
    #: How many notices it tells of.
    count: int
    attempts: int = 0
    due_at: datetime = Field(sa_column=moment())
    recorded_at: datetime = Field(sa_column=moment())


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
    due_at: datetime = Field(sa_column=moment())
    recorded_at: datetime = Field(sa_column=moment())
    done_at: datetime | None = Field(default=None, sa_column=moment(nullable=True))
    #: The owner's answer: its HTTP status, and the id it gave what it created.
    answer_status: int | None = None
    result_id: str | None = Field(default=None, max_length=200)
    #: Why the last attempt failed or was refused, safe to show who asked.
    error: str | None = Field(default=None, max_length=200)
