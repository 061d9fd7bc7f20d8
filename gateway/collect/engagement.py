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

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import select

from gateway.memo import RECENT_SECONDS, Recent
from gateway.sources import SourceReport, SourceStatus
from store.db import Database, Insert
from store.tables import Engagement, EngagementCheck, as_utc

_ENGAGEMENT: Table = Engagement.__table__  # type: ignore[attr-defined]
_CHECK: Table = EngagementCheck.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Plan:
    """Which sources not to ask this time, and whether this is a full check."""

    skip: frozenset[str]
    full: bool


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
            if checked_at is None or now - as_utc(checked_at) >= self._interval:
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
        now = datetime.now(UTC)
        engagement = _ENGAGEMENT.c
        async with self._db.connect() as conn:
            known: dict[str, bool] = {
                source_id: has_data
                for source_id, has_data in await conn.execute(
                    select(engagement.source_id, engagement.has_data).where(
                        engagement.patient_id == patient_id
                    )
                )
            }
        # In key order, as every other writer of these rows: no two wait for each other.
        rows = [
            self._put(patient_id, source_id, has_data, now)
            for source_id, has_data in sorted(
                (r.source_id, r.status is SourceStatus.OK)
                for r in reports
                if r.status in (SourceStatus.OK, SourceStatus.NO_DATA)
            )
            if full or known.get(source_id) != has_data
        ]
        if full and all(r.status in (SourceStatus.OK, SourceStatus.NO_DATA) for r in reports):
            check = self._db.upsert(_CHECK).values(patient_id=patient_id, checked_at=now)
            rows.append(
                check.on_conflict_do_update(index_elements=["patient_id"], set_={"checked_at": now})
            )

        async def write(conn: AsyncConnection) -> None:
            for row in rows:
                await conn.execute(row)

        try:
            if rows:  # else nothing new learned: no write on the hot path
                await self._db.write(write)
        finally:
            # What it learned is seen at once here, whether or not another process
            # learned it first.
            self._recent.discard(patient_id)

    def _put(self, patient_id: str, source_id: str, has_data: bool, now: datetime) -> Insert:
        # An upsert: two requests learning about the same person at once both succeed.
        row = self._db.upsert(_ENGAGEMENT).values(
            patient_id=patient_id, source_id=source_id, has_data=has_data, checked_at=now
        )
        return row.on_conflict_do_update(
            index_elements=["patient_id", "source_id"],
            set_={"has_data": has_data, "checked_at": now},
        )

    async def announce(self, patient_id: str, source_id: str) -> None:
        """A source says it now holds data for the person: ask it from the next request on
        (in this process; in others within :data:`RECENT_SECONDS`)."""
        row = self._put(patient_id, source_id, True, datetime.now(UTC))

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(row)

        try:
            await self._db.write(write)
        finally:
            self._recent.discard(patient_id)
