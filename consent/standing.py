"""A patient's standing for one read, in one statement: consents, blocks, the asking
clinician's emergency access, the seals in force, whether the person's own source holds
anything, and what they asked to be told of."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    BindParameter,
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    Row,
    Select,
    String,
    Table,
    bindparam,
    cast,
    exists,
    literal_column,
    null,
    or_,
    union_all,
)
from sqlalchemy import select as select_rows
from sqlalchemy.types import TypeEngine

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

#: The tables a person's standing is read from: a change to any of them changes it
#: (:mod:`consent.standing_memory`; each has a trigger that says so, migration 0019).
STANDING_TABLES = frozenset(
    table.name for table in (_CONSENTS, _BLOCKS, _EMERGENCY, _SEALS, _OWN, _NOTICE_SETTINGS)
)

_TEXT, _MOMENT, _FLAG, _NUMBER = String(), DateTime(timezone=True), Boolean(), Integer()


def _none(type_: TypeEngine[Any]) -> ColumnElement[Any]:
    return cast(null(), type_)


#: The one row shape every kind of :data:`_STANDING`'s rows has (after ``kind``), and
#: each column's type.
_SHAPE: dict[str, TypeEngine[Any]] = {
    "id": _TEXT,
    "who_type": _TEXT,
    "who": _TEXT,
    "unit": _TEXT,
    "provider": _TEXT,
    "starts": _MOMENT,
    "ends": _MOMENT,
    "recorded": _MOMENT,
    "ended": _MOMENT,
    "reason": _TEXT,
    "override": _TEXT,
    "hidden_from": _TEXT,
    "covers": _TEXT,
    "manages": _FLAG,
    "days": _NUMBER,
    "kinds": _TEXT,
    "channel": _FLAG,
}


def _rows(kind: str, *, first: bool = False, **columns: ColumnElement[Any]) -> Select[Any]:
    """One kind's rows in :data:`_SHAPE`: its ``columns``, and NULL for the rest. Only the
    ``first`` of a union names its columns and types its NULLs (the union takes its names,
    and PostgreSQL a NULL's type from the rows before it), which keeps the statement
    within what the PostgreSQL driver keeps parsed (4,096 bytes)."""
    if not set(columns) <= set(_SHAPE):
        raise ValueError(f"not in the standing's row shape: {sorted(set(columns) - set(_SHAPE))}")
    values = [
        literal_column(f"'{kind}'", _TEXT),
        *(columns.get(name, _none(type_) if first else null()) for name, type_ in _SHAPE.items()),
    ]
    if first:
        values = [value.label(name) for value, name in zip(values, ["kind", *_SHAPE], strict=True)]
    return select_rows(*values)


_PATIENT: BindParameter[Any] = bindparam("patient_id")

# A patient's standing in one statement (one round trip on every data read): consents,
# blocks, the asking clinician's emergency access, the seals in force, whether the
# person's own source holds anything and what they asked to be told of, told apart by
# ``kind``. Built once: building a statement costs more than running it.
_STANDING = union_all(
    _rows(
        "consent",
        first=True,
        id=_CONSENTS.c.id,
        who_type=_CONSENTS.c.grantee_type,
        who=_CONSENTS.c.grantee_hsa_id,
        starts=_CONSENTS.c.period_start,
        ends=_CONSENTS.c.period_end,
        recorded=_CONSENTS.c.recorded_at,
        ended=_CONSENTS.c.withdrawn_at,
        covers=_CONSENTS.c.covers,
        manages=_CONSENTS.c.manages,
    ).where(_CONSENTS.c.patient_id == _PATIENT),
    _rows(
        "block",
        id=_BLOCKS.c.id,
        who_type=_BLOCKS.c.blocked_type,
        who=_BLOCKS.c.blocked_hsa_id,
        recorded=_BLOCKS.c.recorded_at,
        ended=_BLOCKS.c.lifted_at,
        hidden_from=_BLOCKS.c.hidden_from,
    ).where(_BLOCKS.c.patient_id == _PATIENT),
    _rows(
        "emergency",
        id=_EMERGENCY.c.id,
        who=_EMERGENCY.c.clinician_hsa_id,
        unit=_EMERGENCY.c.care_unit_hsa_id,
        provider=_EMERGENCY.c.care_provider_hsa_id,
        starts=_EMERGENCY.c.started_at,
        ends=_EMERGENCY.c.expires_at,
        reason=_EMERGENCY.c.reason,
        override=_EMERGENCY.c.block_override_reason,
    ).where(
        _EMERGENCY.c.patient_id == _PATIENT,
        _EMERGENCY.c.clinician_hsa_id == bindparam("clinician"),
    ),
    _rows(
        "seal",
        id=_SEALS.c.id,
        who_type=_SEALS.c.kind,
        who=_SEALS.c.hsa_id,
        starts=_SEALS.c.data_start,
        ends=_SEALS.c.data_end,
        recorded=_SEALS.c.recorded_at,
        ended=_SEALS.c.lifted_at,
        days=_SEALS.c.delay_days,
    ).where(_SEALS.c.patient_id == _PATIENT, _SEALS.c.lifted_at.is_(None)),
    # One row when the own source holds anything, none when it holds nothing.
    _rows("own").where(exists().where(_OWN.c.patient_id == _PATIENT)),
    _rows(
        "notice",
        kinds=cast(_NOTICE_SETTINGS.c.kinds, _TEXT),
        channel=or_(_NOTICE_SETTINGS.c.email.is_not(None), _NOTICE_SETTINGS.c.webhook.is_not(None)),
    ).where(_NOTICE_SETTINGS.c.patient_id == _PATIENT),
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


@dataclass(frozen=True, slots=True)
class HeldStanding:
    """A patient's standing as read for one asker, whatever the time: :meth:`at` a read's
    time is its :class:`Standing` (the emergency access running then). What a worker
    keeps in memory (:mod:`consent.standing_memory`)."""

    consents: tuple[ConsentRecord, ...]
    blocks: tuple[BlockRecord, ...]
    accesses: tuple[EmergencyAccess, ...]
    seals: tuple[SealRecord, ...]
    holds_own: bool
    notice_kinds: frozenset[str]
    notice_channel: bool

    def at(self, at: datetime) -> Standing:
        return Standing(
            self.consents,
            self.blocks,
            _running(self.accesses, at),
            self.seals,
            self.holds_own,
            self.notice_kinds,
            self.notice_channel,
        )


async def read_standing(
    db: Database, patient_id: str, clinician_hsa_id: str | None
) -> HeldStanding:
    """Every consent and block of the patient, newest first (ended ones too), for a
    clinician their emergency accesses, the seals in force, whether the person recorded
    anything themselves and what they asked to be told of: read at once.

    On every data read whose standing no worker holds: one statement, no ORM session.
    """
    async with db.connect() as conn:
        rows = (
            await conn.execute(_STANDING, {"patient_id": patient_id, "clinician": clinician_hsa_id})
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
    notice = next((row for row in rows if row.kind == "notice"), None)
    return HeldStanding(
        tuple(consents),
        tuple(blocks),
        tuple(accesses),
        tuple(seals),
        any(row.kind == "own" for row in rows),
        frozenset(orjson.loads(notice.kinds)) if notice else frozenset(),
        bool(notice.channel) if notice else False,
    )
