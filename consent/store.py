"""Reading and writing consent, block and emergency-access records."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, Executable, Table, insert, update
from sqlalchemy import select as select_rows
from sqlmodel import SQLModel

from consent.audit import AuditLog
from consent.entries import AuditEntryCreate
from consent.reasons import stated_reason
from consent.seal_store import SealStore
from consent.standing import HeldStanding, Standing, read_standing
from consent.standing_memory import StandingMemory
from store.db import Database
from store.tables import BlockRecord, ConsentRecord, EmergencyAccess, as_utc, table_of

ORGANISATION_LEVELS = ("care-provider", "care-unit")
#: From whom a block hides: everyone else, or the patient's guardians only.
BLOCK_AUDIENCES = ("others", "guardians")


def _wall_clock() -> datetime:
    return datetime.now(UTC)


#: Where a store reads the time its records are made at.
Clock = Callable[[], datetime]


_CONSENTS: Table = table_of(ConsentRecord)
_BLOCKS: Table = table_of(BlockRecord)
_EMERGENCY: Table = table_of(EmergencyAccess)

#: The access log and the entry that records a change, written with it (see
#: :meth:`ConsentStore.grant`).
Logged = tuple[AuditLog, AuditEntryCreate]


class ConsentStore:
    """Consent, blocks and emergency access of patients, by opaque patient id."""

    def __init__(
        self,
        db: Database,
        clock: Clock = _wall_clock,
        memory: StandingMemory[HeldStanding] | None = None,
    ) -> None:
        self._db = db
        #: People's standing as this worker last read it (None: read on every request).
        self.memory = memory
        #: The time records are made, withdrawn and lifted at: the same clock access is
        #: decided with (``Services.now``), so that a moved clock moves both.
        self.clock = clock
        #: The person's seals of their online view (:mod:`consent.seal_store`).
        self.seals = SealStore(db, lambda: self.clock())

    async def standing(
        self, patient_id: str, clinician_hsa_id: str | None, at: datetime
    ) -> Standing:
        """The patient's standing for one read (:func:`consent.standing.read_standing`),
        as this worker holds it if it may (:mod:`consent.standing_memory`)."""
        memory = self.memory
        if memory is None:
            return (await read_standing(self._db, patient_id, clinician_hsa_id)).at(at)
        held = memory.recall(patient_id, clinician_hsa_id)
        if held is None:
            token = memory.token()
            held = await read_standing(self._db, patient_id, clinician_hsa_id)
            memory.remember(patient_id, clinician_hsa_id, held, token)
        return held.at(at)

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
