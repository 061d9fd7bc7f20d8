"""The engagement index: which sources hold data for which person.

Learned from every fetch (a source that answered ``ok`` holds data, ``no-data`` holds
none; failures teach nothing) and from sources announcing new data. A request asks the
sources that hold data or are unknown, and skips those known to hold nothing, except that
at least every ``full_check_interval`` every source is asked again, so a source that
gained data is never hidden for longer than that bound. People are known by their opaque
id only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, DateTime, Table
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.aggregate import SourceReport, SourceStatus
from gateway.memo import RECENT_SECONDS, Recent
from gateway.store.db import Database


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


_ENGAGEMENT: Table = Engagement.__table__  # type: ignore[attr-defined]
_CHECK: Table = EngagementCheck.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Plan:
    """Which sources not to ask this time, and whether this is a full check."""

    skip: frozenset[str]
    full: bool


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class EngagementIndex:
    def __init__(self, db: Database, full_check_interval: timedelta) -> None:
        self._db = db
        self._interval = full_check_interval
        #: Each person's plan as lately made: this process's own learning is seen at
        #: once, another's within :data:`RECENT_SECONDS`.
        self._recent: Recent[str, Plan] = Recent(RECENT_SECONDS)

    async def plan(self, patient_id: str, now: datetime | None = None) -> Plan:
        """The sources to skip for ``patient_id``: known to hold nothing, checked recently."""
        remembered = self._recent.get(patient_id)
        if remembered is not None:
            return remembered
        now = now or datetime.now(UTC)
        check, engagement = _CHECK.c, _ENGAGEMENT.c
        async with self._db.connect() as conn:
            checked_at = (
                await conn.execute(select(check.checked_at).where(check.patient_id == patient_id))
            ).scalar_one_or_none()
            if checked_at is None or now - _aware(checked_at) >= self._interval:
                plan = Plan(skip=frozenset(), full=True)
            else:
                rows = await conn.execute(
                    select(engagement.source_id).where(
                        engagement.patient_id == patient_id, engagement.has_data.is_(False)
                    )
                )
                plan = Plan(skip=frozenset(rows.scalars().all()), full=False)
        self._recent.put(patient_id, plan)
        return plan

    async def learn(self, patient_id: str, reports: Sequence[SourceReport], *, full: bool) -> None:
        """Record what the sources answered (failures and skipped sources teach nothing)."""
        if not full and not any(
            r.status in (SourceStatus.OK, SourceStatus.NO_DATA) for r in reports
        ):
            return  # nothing to learn: no database round trip, the plan stands
        self._recent.discard(patient_id)
        now = datetime.now(UTC)
        async with self._db.session() as session:
            known = {
                row.source_id: row.has_data
                for row in (
                    await session.exec(
                        select(Engagement).where(Engagement.patient_id == patient_id)
                    )
                ).all()
            }
            for report in reports:
                if report.status not in (SourceStatus.OK, SourceStatus.NO_DATA):
                    continue
                has_data = report.status is SourceStatus.OK
                if known.get(report.source_id) == has_data and not full:
                    continue  # nothing new learned: no write on the hot path
                await self._put(session, patient_id, report.source_id, has_data, now)
            if full and all(r.status in (SourceStatus.OK, SourceStatus.NO_DATA) for r in reports):
                check = self._db.upsert(_CHECK).values(patient_id=patient_id, checked_at=now)
                await session.exec(
                    check.on_conflict_do_update(
                        index_elements=["patient_id"], set_={"checked_at": now}
                    )
                )
            await session.commit()

    async def _put(
        self, session: AsyncSession, patient_id: str, source_id: str, has_data: bool, now: datetime
    ) -> None:
        # An upsert: two requests learning about the same person at once both succeed.
        row = self._db.upsert(_ENGAGEMENT).values(
            patient_id=patient_id, source_id=source_id, has_data=has_data, checked_at=now
        )
        await session.exec(
            row.on_conflict_do_update(
                index_elements=["patient_id", "source_id"],
                set_={"has_data": has_data, "checked_at": now},
            )
        )

    async def announce(self, patient_id: str, source_id: str) -> None:
        """A source says it now holds data for the person: ask it from the next request on
        (in this process; in others within :data:`RECENT_SECONDS`)."""
        self._recent.discard(patient_id)
        async with self._db.session() as session:
            await self._put(session, patient_id, source_id, True, datetime.now(UTC))
            await session.commit()
