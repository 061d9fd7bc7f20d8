"""Reading and writing consent, block and emergency-access records."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Executable,
    Integer,
    Row,
    String,
    Table,
    bindparam,
    cast,
    exists,
    insert,
    literal_column,
    null,
    or_,
    union_all,
    update,
)
from sqlalchemy import select as select_rows
from sqlalchemy.types import TypeEngine
from sqlmodel import SQLModel

from consent.audit import AuditLog
from consent.entries import AuditEntryCreate
from consent.reasons import stated_reason
from consent.seal_store import SealStore
from store.db import Database
from store.jobs import NoticeSetting
from store.tables import (
    BlockRecord,
    ConsentRecord,
    EmergencyAccess,
    OwnResource,
    SealRecord,
    as_utc,
    table_of,
)

ORGANISATION_LEVELS = ("care-provider", "care-unit")
#: From whom a block hides: everyone else, or the patient's guardians only.
BLOCK_AUDIENCES = ("others", "guardians")


def _wall_clock() -> datetime:
    return datetime.now(UTC)


#: Where a store reads the time its records are made at.
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Standing:
    """A patient's choices as they bear on one read."""

    consents: Sequence[ConsentRecord]
    blocks: Sequence[BlockRecord]
    emergency: EmergencyAccess | None
    #: The seals and delayed releases in force (not lifted), newest first.
    seals: Sequence[SealRecord] = ()
    #: Whether the person has recorded anything themselves (their own source holds data).
    holds_own: bool = False
    #: What the person asked to be told of (``notice_setting``), and whether they gave a
    #: channel to be told by (e-mail or webhook): an access is told as it is logged.
    notice_kinds: frozenset[str] = frozenset()
    notice_channel: bool = False


_CONSENTS: Table = table_of(ConsentRecord)
_BLOCKS: Table = table_of(BlockRecord)
_EMERGENCY: Table = table_of(EmergencyAccess)
_SEALS: Table = table_of(SealRecord)
_OWN: Table = table_of(OwnResource)
_NOTICE_SETTINGS: Table = table_of(NoticeSetting)

#: The access log and the entry that records a change, written with it (see
#: :meth:`ConsentStore.grant`).
Logged = tuple[AuditLog, AuditEntryCreate]

_TEXT, _MOMENT, _FLAG, _NUMBER = String(), DateTime(timezone=True), Boolean(), Integer()


def _none(type_: TypeEngine[Any]) -> ColumnElement[Any]:
    return cast(null(), type_)


# A patient's standing in one statement (one round trip on every data read): consents,
# blocks, the asking clinician's emergency access, the seals in force, whether the
# person's own source holds anything and what they asked to be told of, in one row
# shape, told apart by ``kind``. Built once: building a statement costs more than
# running it.
_STANDING = union_all(
    select_rows(
        literal_column("'consent'", _TEXT).label("kind"),
        _CONSENTS.c.id,
        _CONSENTS.c.grantee_type.label("who_type"),
        _CONSENTS.c.grantee_hsa_id.label("who"),
        _none(_TEXT).label("unit"),
        _none(_TEXT).label("provider"),
        _CONSENTS.c.period_start.label("starts"),
        _CONSENTS.c.period_end.label("ends"),
        _CONSENTS.c.recorded_at.label("recorded"),
        _CONSENTS.c.withdrawn_at.label("ended"),
        _none(_TEXT).label("reason"),
        _none(_TEXT).label("override"),
        _none(_TEXT).label("hidden_from"),
        _CONSENTS.c.covers.label("covers"),
        _CONSENTS.c.manages.label("manages"),
        _none(_NUMBER).label("days"),
        _none(_TEXT).label("kinds"),
        _none(_FLAG).label("channel"),
    ).where(_CONSENTS.c.patient_id == bindparam("patient_id")),
    select_rows(
        literal_column("'block'", _TEXT),
        _BLOCKS.c.id,
        _BLOCKS.c.blocked_type,
        _BLOCKS.c.blocked_hsa_id,
        _none(_TEXT),
        _none(_TEXT),
        _none(_MOMENT),
        _none(_MOMENT),
        _BLOCKS.c.recorded_at,
        _BLOCKS.c.lifted_at,
        _none(_TEXT),
        _none(_TEXT),
        _BLOCKS.c.hidden_from,
        _none(_TEXT),
        _none(_FLAG),
        _none(_NUMBER),
        _none(_TEXT),
        _none(_FLAG),
    ).where(_BLOCKS.c.patient_id == bindparam("patient_id")),
    select_rows(
        literal_column("'emergency'", _TEXT),
        _EMERGENCY.c.id,
        _none(_TEXT),
        _EMERGENCY.c.clinician_hsa_id,
        _EMERGENCY.c.care_unit_hsa_id,
        _EMERGENCY.c.care_provider_hsa_id,
        _EMERGENCY.c.started_at,
        _EMERGENCY.c.expires_at,
        _none(_MOMENT),
        _none(_MOMENT),
        _EMERGENCY.c.reason,
        _EMERGENCY.c.block_override_reason,
        _none(_TEXT),
        _none(_TEXT),
        _none(_FLAG),
        _none(_NUMBER),
        _none(_TEXT),
        _none(_FLAG),
    ).where(
        _EMERGENCY.c.patient_id == bindparam("patient_id"),
        _EMERGENCY.c.clinician_hsa_id == bindparam("clinician"),
    ),
    select_rows(
        literal_column("'seal'", _TEXT),
        _SEALS.c.id,
        _SEALS.c.kind,
        _SEALS.c.hsa_id,
        _none(_TEXT),
        _none(_TEXT),
        _SEALS.c.data_start,
        _SEALS.c.data_end,
        _SEALS.c.recorded_at,
        _SEALS.c.lifted_at,
        _none(_TEXT),
        _none(_TEXT),
        _none(_TEXT),
        _none(_TEXT),
        _none(_FLAG),
        _SEALS.c.delay_days,
        _none(_TEXT),
        _none(_FLAG),
    ).where(_SEALS.c.patient_id == bindparam("patient_id"), _SEALS.c.lifted_at.is_(None)),
    # One row when the own source holds anything, none when it holds nothing.
    select_rows(
        literal_column("'own'", _TEXT),
        *(_none(_TEXT) for _ in range(5)),
        *(_none(_MOMENT) for _ in range(4)),
        *(_none(_TEXT) for _ in range(4)),
        _none(_FLAG),
        _none(_NUMBER),
        _none(_TEXT),
        _none(_FLAG),
    ).where(exists().where(_OWN.c.patient_id == bindparam("patient_id"))),
    select_rows(
        literal_column("'notice'", _TEXT),
        *(_none(_TEXT) for _ in range(5)),
        *(_none(_MOMENT) for _ in range(4)),
        *(_none(_TEXT) for _ in range(4)),
        _none(_FLAG),
        _none(_NUMBER),
        cast(_NOTICE_SETTINGS.c.kinds, _TEXT),
        or_(_NOTICE_SETTINGS.c.email.is_not(None), _NOTICE_SETTINGS.c.webhook.is_not(None)),
    ).where(_NOTICE_SETTINGS.c.patient_id == bindparam("patient_id")),
)


#: The rows of :data:`_STANDING` that are facts about the person rather than records.
_FLAGS = ("own", "notice")


def _from_row(
    row: Row[Any], patient_id: str
) -> ConsentRecord | BlockRecord | EmergencyAccess | SealRecord:
    """One record of :data:`_STANDING`'s rows (not one of :data:`_FLAGS`)."""
    if row.kind == "consent":
        return ConsentRecord(
            id=row.id,
            patient_id=patient_id,
            grantee_type=row.who_type,
            grantee_hsa_id=row.who,
            period_start=row.starts,
            period_end=row.ends,
            recorded_at=row.recorded,
            withdrawn_at=row.ended,
            covers=row.covers,
            manages=bool(row.manages),
        )
    if row.kind == "block":
        return BlockRecord(
            id=row.id,
            patient_id=patient_id,
            blocked_type=row.who_type,
            blocked_hsa_id=row.who,
            hidden_from=row.hidden_from,
            recorded_at=row.recorded,
            lifted_at=row.ended,
        )
    if row.kind == "seal":
        return SealRecord(
            id=row.id,
            patient_id=patient_id,
            kind=row.who_type,
            hsa_id=row.who,
            data_start=row.starts,
            data_end=row.ends,
            delay_days=row.days,
            recorded_at=row.recorded,
            lifted_at=row.ended,
        )
    return EmergencyAccess(
        id=row.id,
        patient_id=patient_id,
        clinician_hsa_id=row.who,
        care_unit_hsa_id=row.unit,
        care_provider_hsa_id=row.provider,
        reason=row.reason,
        block_override_reason=row.override,
        started_at=row.starts,
        expires_at=row.ends,
    )


def _running(accesses: Sequence[EmergencyAccess], at: datetime) -> EmergencyAccess | None:
    for access in accesses:
        if as_utc(access.started_at) <= at < as_utc(access.expires_at):
            return access
    return None


class ConsentStore:
    """Consent, blocks and emergency access of patients, by opaque patient id."""

    def __init__(self, db: Database, clock: Clock = _wall_clock) -> None:
        self._db = db
        #: The time records are made, withdrawn and lifted at: the same clock access is
        #: decided with (``Services.now``), so that a moved clock moves both.
        self.clock = clock
        #: The person's seals of their online view (:mod:`consent.seal_store`).
        self.seals = SealStore(db, lambda: self.clock())

    async def standing(
        self, patient_id: str, clinician_hsa_id: str | None, at: datetime
    ) -> Standing:
        """Every consent and block of the patient, newest first (ended ones too), for a
        clinician their emergency access that is running ``at``, the seals in force and
        whether the person recorded anything themselves: read at once.

        On every data read: one statement, no ORM session.
        """
        async with self._db.connect() as conn:
            rows = (
                await conn.execute(
                    _STANDING, {"patient_id": patient_id, "clinician": clinician_hsa_id}
                )
            ).all()
        records = [_from_row(row, patient_id) for row in rows if row.kind not in _FLAGS]
        consents = [r for r in records if isinstance(r, ConsentRecord)]
        blocks = [r for r in records if isinstance(r, BlockRecord)]
        accesses = [r for r in records if isinstance(r, EmergencyAccess)]
        seals = [r for r in records if isinstance(r, SealRecord)]
        consents.sort(key=lambda c: as_utc(c.recorded_at), reverse=True)
        blocks.sort(key=lambda b: as_utc(b.recorded_at), reverse=True)
        accesses.sort(key=lambda e: as_utc(e.expires_at), reverse=True)
        seals.sort(key=lambda s: as_utc(s.recorded_at), reverse=True)
        holds_own = any(row.kind == "own" for row in rows)
        notice = next((row for row in rows if row.kind == "notice"), None)
        return Standing(
            consents,
            blocks,
            _running(accesses, at),
            seals,
            holds_own,
            frozenset(orjson.loads(notice.kinds)) if notice else frozenset(),
            bool(notice.channel) if notice else False,
        )

    async def consented_patients(self, care_provider_hsa_id: str, at: datetime) -> list[str]:
        """The patients (opaque ids, in order) with a consent naming the care provider
        ``care_provider_hsa_id`` itself that is active ``at``: whom an export for the
        provider covers. Each is decided on again when their data is read."""
        consents = _CONSENTS.c
        query = select_rows(consents.patient_id, consents.period_start, consents.period_end).where(
            consents.grantee_type == "care-provider",
            consents.grantee_hsa_id == care_provider_hsa_id,
            consents.withdrawn_at.is_(None),
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        # The period is compared here: SQLite keeps moments as text without their zone.
        active = {
            str(patient_id)
            for patient_id, start, end in rows
            if as_utc(start) <= at and (end is None or as_utc(end) > at)
        }
        return sorted(active)

    async def proxied_patients(self, proxy_id: str, at: datetime) -> list[str]:
        """The patients (opaque ids, in order) whose proxy grant naming ``proxy_id`` (the
        proxy's opaque id) is active ``at``: whom the proxy may act for. Each read is
        decided on again."""
        consents = _CONSENTS.c
        query = select_rows(consents.patient_id, consents.period_start, consents.period_end).where(
            consents.grantee_type == "proxy",
            consents.grantee_hsa_id == proxy_id,
            consents.withdrawn_at.is_(None),
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return sorted(
            {
                str(patient_id)
                for patient_id, start, end in rows
                if as_utc(start) <= at and (end is None or as_utc(end) > at)
            }
        )

    async def _save(self, record: SQLModel, table: Table, logged: Logged | None) -> None:
        """Insert ``record``; with ``logged``, in one transaction with its log entry."""
        if logged is not None:
            log, entry = logged
            await log.append(entry, together_with=[insert(table).values(**record.model_dump())])
            return
        async with self._db.session() as session:
            session.add(record)
            await session.commit()

    async def grant(
        self,
        patient_id: str,
        grantee_type: str,
        grantee_hsa_id: str,
        start: datetime | None,
        end: datetime | None,
        *,
        logged: Logged | None = None,
        covers: Sequence[str] | None = None,
        manages: bool = False,
    ) -> ConsentRecord:
        """Record a consent; with ``logged`` (the access log and the entry recording
        this), the consent and its entry are committed together or not at all. A proxy
        grant (``grantee_type`` ``proxy``, the proxy's opaque id) may be limited to what
        it ``covers`` and may let the proxy manage the person's choices (``manages``)."""
        now = self.clock()
        record = ConsentRecord(
            id=f"consent-{uuid.uuid4().hex}",
            patient_id=patient_id,
            grantee_type=grantee_type,
            grantee_hsa_id=grantee_hsa_id,
            period_start=start or now,
            period_end=end,
            recorded_at=now,
            covers=" ".join(covers) if covers else None,
            manages=manages,
        )
        await self._save(record, _CONSENTS, logged)
        return record

    async def block(
        self,
        patient_id: str,
        blocked_type: str,
        blocked_hsa_id: str,
        *,
        hidden_from: str = "others",
        logged: Logged | None = None,
    ) -> BlockRecord:
        """Record a block, hiding the data from ``hidden_from`` (``others``: everyone
        else; ``guardians``: the patient's guardians only); ``logged`` as for :meth:`grant`."""
        if hidden_from not in BLOCK_AUDIENCES:
            raise ValueError("a block hides from others or from guardians")
        record = BlockRecord(
            id=f"block-{uuid.uuid4().hex}",
            patient_id=patient_id,
            blocked_type=blocked_type,
            blocked_hsa_id=blocked_hsa_id,
            hidden_from=hidden_from,
            recorded_at=self.clock(),
        )
        await self._save(record, _BLOCKS, logged)
        return record

    async def get_consent(self, record_id: str) -> ConsentRecord | None:
        async with self._db.session() as session:
            return await session.get(ConsentRecord, record_id)

    async def get_block(self, record_id: str) -> BlockRecord | None:
        async with self._db.session() as session:
            return await session.get(BlockRecord, record_id)

    async def withdraw(
        self, record_id: str, *, logged: Logged | None = None
    ) -> ConsentRecord | None:
        """End a consent now (idempotent); None if there is no such consent. With
        ``logged``, the withdrawal and its log entry are committed together or not at all."""
        record = await self.get_consent(record_id)
        if record is None:
            return None
        if record.withdrawn_at is None:
            record.withdrawn_at = self.clock()
            ended = _CONSENTS.c.withdrawn_at
            await self._end(_CONSENTS, record_id, ended, record.withdrawn_at, logged)
        elif logged is not None:
            await logged[0].append(logged[1])
        return record

    async def lift(self, record_id: str, *, logged: Logged | None = None) -> BlockRecord | None:
        """Lift a block now (idempotent); None if there is no such block; ``logged`` as
        for :meth:`withdraw`."""
        record = await self.get_block(record_id)
        if record is None:
            return None
        if record.lifted_at is None:
            record.lifted_at = self.clock()
            await self._end(_BLOCKS, record_id, _BLOCKS.c.lifted_at, record.lifted_at, logged)
        elif logged is not None:
            await logged[0].append(logged[1])
        return record

    async def _end(
        self,
        table: Table,
        record_id: str,
        ended: Column[Any],
        at: datetime,
        logged: Logged | None,
    ) -> None:
        """Set ``ended`` of the record ``record_id`` to ``at`` unless it is set already."""
        statement = (
            update(table).where(table.c.id == record_id, ended.is_(None)).values({ended: at})
        )
        if logged is not None:
            await logged[0].append(logged[1], together_with=[statement])
            return
        async with self._db.session() as session:
            await (await session.connection()).execute(statement)
            await session.commit()

    async def open_emergency(
        self,
        patient_id: str,
        clinician_hsa_id: str,
        care_unit_hsa_id: str,
        care_provider_hsa_id: str,
        reason: str,
        block_override_reason: str | None,
        duration: timedelta,
        *,
        log: AuditLog,
        logged_as: AuditEntryCreate,
        together_with: Sequence[Executable] = (),
    ) -> EmergencyAccess:
        """Record an emergency access together with its access log entry ``logged_as``,
        appended to ``log``: in one transaction, so there is never one without the other
        (nor without the rows ``together_with``: the person's notice of it).

        Both reasons are kept as :func:`consent.reasons.stated_reason` makes them (the
        log entry's reason is kept by the same rule); a failing one raises
        :class:`consent.reasons.InvalidReason` and nothing is stored.
        """
        now = self.clock()
        record = EmergencyAccess(
            id=f"emergency-{uuid.uuid4().hex}",
            patient_id=patient_id,
            clinician_hsa_id=clinician_hsa_id,
            care_unit_hsa_id=care_unit_hsa_id,
            care_provider_hsa_id=care_provider_hsa_id,
            reason=stated_reason(reason),
            block_override_reason=(
                None if block_override_reason is None else stated_reason(block_override_reason)
            ),
            started_at=now,
            expires_at=now + duration,
        )
        logged = (logged_as.patient_id, logged_as.actor_id, logged_as.action)
        if logged != (patient_id, clinician_hsa_id, "emergency-open") or (
            logged_as.emergency_reason != record.reason
        ):
            raise ValueError("the log entry must be this clinician's emergency opening")
        opened = insert(_EMERGENCY).values(**record.model_dump())
        await log.append(logged_as, together_with=[opened, *together_with])
        return record
