"""Reading and writing consent, block and emergency-access records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, bindparam
from sqlalchemy import select as select_rows
from sqlmodel import SQLModel

from consent.models import BlockRecord, ConsentRecord, EmergencyAccess
from gateway.store.db import Database

ORGANISATION_LEVELS = ("care-provider", "care-unit")


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def consent_is_active(record: ConsentRecord, at: datetime) -> bool:
    if record.withdrawn_at is not None:
        return False
    if _aware(record.period_start) > at:
        return False
    return record.period_end is None or _aware(record.period_end) > at


@dataclass(frozen=True, slots=True)
class Standing:
    """A patient's choices as they bear on one read."""

    consents: Sequence[ConsentRecord]
    blocks: Sequence[BlockRecord]
    emergency: EmergencyAccess | None


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


_CONSENTS: Table = _table(ConsentRecord)
_BLOCKS: Table = _table(BlockRecord)
_EMERGENCY: Table = _table(EmergencyAccess)
# The statements of every data read, built once (building one costs more than running it).
_CONSENTS_OF = (
    select_rows(_CONSENTS)
    .where(_CONSENTS.c.patient_id == bindparam("patient_id"))
    .order_by(_CONSENTS.c.recorded_at.desc())
)
_BLOCKS_OF = (
    select_rows(_BLOCKS)
    .where(_BLOCKS.c.patient_id == bindparam("patient_id"))
    .order_by(_BLOCKS.c.recorded_at.desc())
)
_EMERGENCY_OF = (
    select_rows(_EMERGENCY)
    .where(
        _EMERGENCY.c.patient_id == bindparam("patient_id"),
        _EMERGENCY.c.clinician_hsa_id == bindparam("clinician"),
    )
    .order_by(_EMERGENCY.c.expires_at.desc())
)


def _running(accesses: Sequence[EmergencyAccess], at: datetime) -> EmergencyAccess | None:
    for access in accesses:
        if _aware(access.started_at) <= at < _aware(access.expires_at):
            return access
    return None


class ConsentStore:
    """Consent, blocks and emergency access of patients, by opaque patient id."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def standing(
        self, patient_id: str, clinician_hsa_id: str | None, at: datetime
    ) -> Standing:
        """Every consent and block of the patient, newest first (ended ones too), and for
        a clinician their emergency access that is running ``at``: read at once.

        On every data read: plain statements on one connection, no ORM session.
        """
        async with self._db.connect() as conn:
            found_consents = [
                ConsentRecord(**row._mapping)
                for row in await conn.execute(_CONSENTS_OF, {"patient_id": patient_id})
            ]
            found_blocks = [
                BlockRecord(**row._mapping)
                for row in await conn.execute(_BLOCKS_OF, {"patient_id": patient_id})
            ]
            emergency = None
            if clinician_hsa_id is not None:
                rows = await conn.execute(
                    _EMERGENCY_OF, {"patient_id": patient_id, "clinician": clinician_hsa_id}
                )
                emergency = _running([EmergencyAccess(**row._mapping) for row in rows], at)
        return Standing(found_consents, found_blocks, emergency)

    async def grant(
        self,
        patient_id: str,
        grantee_type: str,
        grantee_hsa_id: str,
        start: datetime | None,
        end: datetime | None,
    ) -> ConsentRecord:
        now = _now()
        record = ConsentRecord(
            id=f"consent-{uuid.uuid4().hex}",
            patient_id=patient_id,
            grantee_type=grantee_type,
            grantee_hsa_id=grantee_hsa_id,
            period_start=start or now,
            period_end=end,
            recorded_at=now,
        )
        async with self._db.session() as session:
            session.add(record)
            await session.commit()
        return record

    async def block(self, patient_id: str, blocked_type: str, blocked_hsa_id: str) -> BlockRecord:
        record = BlockRecord(
            id=f"block-{uuid.uuid4().hex}",
            patient_id=patient_id,
            blocked_type=blocked_type,
            blocked_hsa_id=blocked_hsa_id,
            recorded_at=_now(),
        )
        async with self._db.session() as session:
            session.add(record)
            await session.commit()
        return record

    async def get_consent(self, record_id: str) -> ConsentRecord | None:
        async with self._db.session() as session:
            return await session.get(ConsentRecord, record_id)

    async def get_block(self, record_id: str) -> BlockRecord | None:
        async with self._db.session() as session:
            return await session.get(BlockRecord, record_id)

    async def withdraw(self, record_id: str) -> ConsentRecord | None:
        """End a consent now (idempotent); None if there is no such consent."""
        async with self._db.session() as session:
            record = await session.get(ConsentRecord, record_id)
            if record is None:
                return None
            if record.withdrawn_at is None:
                record.withdrawn_at = _now()
                session.add(record)
                await session.commit()
            return record

    async def lift(self, record_id: str) -> BlockRecord | None:
        """Lift a block now (idempotent); None if there is no such block."""
        async with self._db.session() as session:
            record = await session.get(BlockRecord, record_id)
            if record is None:
                return None
            if record.lifted_at is None:
                record.lifted_at = _now()
                session.add(record)
                await session.commit()
            return record

    async def open_emergency(
        self,
        patient_id: str,
        clinician_hsa_id: str,
        care_unit_hsa_id: str,
        care_provider_hsa_id: str,
        reason: str,
        block_override_reason: str | None,
        duration: timedelta,
    ) -> EmergencyAccess:
        now = _now()
        record = EmergencyAccess(
            id=f"emergency-{uuid.uuid4().hex}",
            patient_id=patient_id,
            clinician_hsa_id=clinician_hsa_id,
            care_unit_hsa_id=care_unit_hsa_id,
            care_provider_hsa_id=care_provider_hsa_id,
            reason=reason,
            block_override_reason=block_override_reason,
            started_at=now,
            expires_at=now + duration,
        )
        async with self._db.session() as session:
            session.add(record)
            await session.commit()
        return record
