"""Reading and writing the person's seals of their online view (``seal_record``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Table, insert, update
from sqlalchemy import select as select_rows

from consent.audit import AuditLog
from consent.entries import AuditEntryCreate
from consent.seals import SealRequest, midnight
from store.db import Database
from store.tables import SealRecord, as_utc, table_of

_SEALS: Table = table_of(SealRecord)

#: The access log and the entry that records a change, written with it.
Logged = tuple[AuditLog, AuditEntryCreate]


class SealStore:
    """The seals and delayed releases of patients, by opaque patient id. Each change is
    committed in one transaction with its access-log entry, or not at all."""

    def __init__(
        self, db: Database, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._db = db
        #: The time seals are recorded and lifted at.
        self._clock = clock

    async def of_patient(self, patient_id: str) -> list[SealRecord]:
        """The patient's seals, newest first, lifted ones too (those in force are read
        with the rest of the person's standing: :meth:`consent.store.ConsentStore.standing`)."""
        query = select_rows(_SEALS).where(_SEALS.c.patient_id == patient_id)
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        seals = [SealRecord(**dict(row)) for row in rows]
        seals.sort(key=lambda s: as_utc(s.recorded_at), reverse=True)
        return seals

    async def seal(self, request: SealRequest, logged: Logged) -> SealRecord:
        """Record ``request`` with its log entry."""
        record = SealRecord(
            id=f"seal-{uuid.uuid4().hex}",
            patient_id=request.patient_id,
            kind=request.kind,
            hsa_id=request.hsa_id,
            data_start=midnight(request.first_day) if request.first_day else None,
            data_end=midnight(request.last_day) if request.last_day else None,
            delay_days=request.delay_days,
            recorded_at=self._clock(),
        )
        log, entry = logged
        await log.append(entry, together_with=[insert(_SEALS).values(**record.model_dump())])
        return record

    async def get(self, record_id: str) -> SealRecord | None:
        async with self._db.session() as session:
            return await session.get(SealRecord, record_id)

    async def lift(self, record_id: str, logged: Logged) -> SealRecord | None:
        """Lift a seal now (idempotent) with its log entry; None if there is none."""
        record = await self.get(record_id)
        if record is None:
            return None
        log, entry = logged
        if record.lifted_at is not None:
            await log.append(entry)
            return record
        record.lifted_at = self._clock()
        statement = (
            update(_SEALS)
            .where(_SEALS.c.id == record_id, _SEALS.c.lifted_at.is_(None))
            .values(lifted_at=record.lifted_at)
        )
        await log.append(entry, together_with=[statement])
        return record
