"""Stale-while-revalidate: cached data past its freshness but within the stale bound is
served at once (status ``revalidating``) while the source is asked again in the
background, so a record turning stale under load costs the readers nothing.

One refresh per person and source runs at a time: in this process, a map of the
refreshes under way; across processes, a lease row in ``record_cache_refresh`` (taken
under the write lock of its name, given back when the refresh ends, taken over once its
time has passed by a process that finds it left behind). A refresh goes through the same
path as a read's (:meth:`Collector.refresh`: normalise, store, the outboxes of changes)
and takes one of the collector's refresh slots; it reads nothing for anyone (no access
is decided or logged: the data only goes to the cache). A failure leaves the cache as it
was and is logged with the source's id and reason only.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.identifiers import PersonIdentifier
from gateway.sources import SourceReport, SourceStatus
from store.db import Database, StoreUnavailable
from store.tables import CacheRefresh, as_utc

log = logging.getLogger(__name__)

_LEASES: Table = CacheRefresh.__table__  # type: ignore[attr-defined]

#: Asks one source again for one person's ``types``; the source's report, or None when
#: it was not asked after all (the engagement index says it holds nothing).
Refresh = Callable[[PersonIdentifier, str, str, Sequence[str]], Awaitable[SourceReport | None]]


class RefreshLeases:
    """Which process refreshes a person's data from a source, across processes."""

    def __init__(self, db: Database, lease: timedelta) -> None:
        self._db = db
        self._lease = lease
        #: This process, as a holder.
        self.me = uuid.uuid4().hex

    async def take(self, patient_id: str, source_id: str, now: datetime) -> bool:
        """Whether this process may refresh now: no other holds an unexpired lease."""

        async def work(conn: AsyncConnection) -> bool:
            key = (_LEASES.c.patient_id == patient_id, _LEASES.c.source_id == source_id)
            held = (
                await conn.execute(select(_LEASES.c.holder, _LEASES.c.until).where(*key))
            ).first()
            if held is not None and held.holder != self.me and as_utc(held.until) > now:
                return False
            if held is not None:
                await conn.execute(delete(_LEASES).where(*key))
            await conn.execute(
                _LEASES.insert().values(
                    patient_id=patient_id,
                    source_id=source_id,
                    holder=self.me,
                    until=now + self._lease,
                )
            )
            return True

        return await self._db.write(work, lock=f"cache-refresh:{patient_id}:{source_id}")

    async def give_back(self, patient_id: str, source_id: str) -> None:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                delete(_LEASES).where(
                    _LEASES.c.patient_id == patient_id,
                    _LEASES.c.source_id == source_id,
                    _LEASES.c.holder == self.me,
                )
            )

        await self._db.write(work, lock=f"cache-refresh:{patient_id}:{source_id}")


class Revalidator:
    """This process's background refreshes of stale cached data, one per person and source."""

    def __init__(
        self, leases: RefreshLeases, refresh: Refresh, clock: Callable[[], datetime]
    ) -> None:
        self._leases = leases
        self._refresh = refresh
        self._clock = clock
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._closed = False

    def start(
        self, person: PersonIdentifier, patient_id: str, source_id: str, types: Sequence[str]
    ) -> None:
        """Refresh ``source_id``'s data of ``types`` for the person in the background,
        unless a refresh of it is under way here already (or the process is stopping)."""
        key = (patient_id, source_id)
        if self._closed or key in self._running:
            return
        # A context of its own: nothing of the request that started it (its deadline,
        # its call budget) carries over to the refresh.
        task = asyncio.create_task(
            self._run(person, patient_id, source_id, tuple(types)),
            name="cache-revalidate",
            context=contextvars.Context(),
        )
        self._running[key] = task
        task.add_done_callback(lambda _: self._running.pop(key, None))

    @property
    def running(self) -> int:
        """How many refreshes this process has under way."""
        return len(self._running)

    async def settled(self) -> None:
        """Wait for the refreshes under way to end."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _run(
        self, person: PersonIdentifier, patient_id: str, source_id: str, types: Sequence[str]
    ) -> None:
        try:
            if not await self._leases.take(patient_id, source_id, self._clock()):
                return  # another process is refreshing it
            try:
                report = await self._refresh(person, patient_id, source_id, types)
            finally:
                await self._leases.give_back(patient_id, source_id)
        except StoreUnavailable:
            log.warning("background refresh of source %s: the data store is unavailable", source_id)
            return
        except Exception as exc:  # noqa: BLE001 - a background task ends here, logged
            log.warning("background refresh of source %s failed: %s", source_id, type(exc).__name__)
            return
        if report is not None and report.status not in (SourceStatus.OK, SourceStatus.NO_DATA):
            log.warning(
                "background refresh of source %s failed (%s): its cached data stays",
                source_id,
                report.reason or report.status.value,
            )

    async def aclose(self) -> None:
        """Start no more refreshes and cancel those under way (each database write among
        them still commits or rolls back whole: see :meth:`Database.write`)."""
        self._closed = True
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
