"""Collect one person's normalised data: from the cache where it is fresh, from the
sources where it is not, and from the cache again where a source fails.

For every configured source, per request:

* the engagement index says it holds nothing for the person: not asked (``not-asked``);
* its cached data for every asked type is younger than ``fresh_for``: served from the
  cache without asking (``cached``);
* past that but younger than ``stale_for``: served from the cache without waiting
  (``revalidating``) while the source is asked again in the background, once per person
  and source (:mod:`gateway.collect.revalidate`);
* otherwise it is asked: for only what changed since the last sync when the adapter can
  search by last update and the last full refresh is younger than ``full_every``, else for
  everything. A fresh answer is normalised, stored and served (``ok``); ``no-data``
  removes what was cached; a failure serves the cached data if there is any (``stale``,
  with the failure's reason) and otherwise nothing (``failed`` or ``timeout``).

Every report carries ``synced_at``: when the served data was last fetched from the source.

A request asks its sources in its turn (:mod:`gateway.collect.turns`): a few at a time in
a process, the oldest first; one that has no turn in time answers without asking them.
A full answer from a paged source arrives through :mod:`gateway.collect.pages`; a stream
over a large record reads the cache through :mod:`gateway.collect.streams`; both share the
resources kept decoded in memory (:mod:`gateway.collect.decoded`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adapters.base import FhirResource
from fhir_profiles.identifiers import PersonIdentifier
from fhir_profiles.resource_types import RESOURCE_TYPES
from gateway.collect.cache import CacheCorrupt, CacheSnapshot, RecordCache, Sealed, SyncState
from gateway.collect.deadline import HOLD_SHARE, FinishTimes, request_arrival
from gateway.collect.decoded import DecodedMemory
from gateway.collect.engagement import EngagementIndex, Plan
from gateway.collect.fanout import Aggregator
from gateway.collect.pages import Pages
from gateway.collect.revalidate import RefreshLeases, Revalidator
from gateway.collect.streams import Streams
from gateway.collect.turns import Turn, Turns
from gateway.merge.record import NormalisedSource, normalise_source
from gateway.sources import Gathered, Source, SourceRecord, SourceReport, SourceStatus

log = logging.getLogger(__name__)

#: A refresh by last update reaches back this far before the last sync, so a source
#: whose clock runs a little behind ours loses nothing (the overlap is merged by id).
SINCE_OVERLAP = timedelta(minutes=2)

#: A source's Patient is cached as this type, beside the data types.
PATIENT = "Patient"


@dataclass(slots=True)
class Collected:
    """Every source's normalised data that could be served, and a report per source."""

    sources: list[NormalisedSource]
    reports: list[SourceReport]


class Collector:
    def __init__(
        self,
        aggregator: Aggregator,
        cache: RecordCache,
        engagement: EngagementIndex,
        *,
        fresh_for: timedelta,
        full_every: timedelta,
        stale_for: timedelta = timedelta(0),
        leases: RefreshLeases | None = None,
        memory_budget: int = 0,
        max_refreshes: int = 8,
        max_streams: int = 8,
        on_collected: Callable[[Sequence[SourceReport]], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``stale_for``: cached data younger than this (and past ``fresh_for``) is served
        while it is refreshed in the background under ``leases`` (0, or no leases: never,
        it is refreshed first);
        ``memory_budget``: most cached resources kept decoded in memory (0: none);
        ``max_refreshes``: most requests asking sources at once (:class:`Turns`);
        ``max_streams``: most snapshots open at once (see :meth:`snapshot`);
        ``on_collected``: told every read's final source reports (for metrics);
        ``clock``: the time the cache's age is judged at."""
        self._aggregator = aggregator
        self._cache = cache
        self._engagement = engagement
        self._fresh_for = fresh_for
        self._full_every = full_every
        self._stale_for = stale_for
        self._clock = clock
        #: How long this process lately took to finish an answer after its fan-out:
        #: kept back from the sources' share of the deadline (see :mod:`gateway.collect.deadline`).
        self.finish_times = FinishTimes()
        self.turns = Turns(max_refreshes, hold=aggregator.deadline * HOLD_SHARE)
        self._decoded = DecodedMemory(memory_budget)
        self._streams = Streams(cache, self._decoded, max_streams)
        self._on_collected = on_collected
        #: Whose cached record holds each resource (for reads by id).
        self.owners = cache.owners
        #: The turns at asking sources and at reading the cache for a streamed answer.
        self.all_turns = {"sources": self.turns, "streams": self._streams.turns}
        #: The refreshes of stale data in the background (None: stale data is refreshed
        #: before it is served).
        self.revalidator = (
            Revalidator(leases, self.refresh, clock)
            if leases and stale_for > fresh_for > timedelta(0)
            else None
        )

    async def collect(
        self,
        person: PersonIdentifier,
        patient_id: str,
        types: Sequence[str],
        *,
        load: bool = True,
        revalidate: bool = True,
    ) -> Collected:
        """The normalised data of ``types`` (and each source's Patient) for ``person``.

        Without ``load``, the sources' resources are left in the cache (their
        ``resources`` are empty; only the Patients are read): a stream over a large
        record reads them a chunk at a time with :meth:`chunks`. Without ``revalidate``,
        stale data is refreshed before it is served, as with no stale bound.
        """
        arrival = request_arrival()
        started = arrival.arrived if arrival is not None else time.monotonic()
        now = self._clock()
        plan = await self._engagement.plan(patient_id, now)
        kept = [PATIENT, *types]
        states = await self._cache.states(patient_id, kept, now)
        by_id = {source.id: source for source in self._aggregator.sources}
        served: dict[str, NormalisedSource] = {}
        since: dict[str, datetime] = {}
        revalidating: set[str] = set()
        for source in self._aggregator.sources:
            known = states.get(source.id, {})
            if source.id in plan.skip or any(t not in known for t in kept):
                continue
            fresh = all(now - s.synced_at < self._fresh_for for s in known.values())
            usable = (
                revalidate
                and self.revalidator is not None
                and all(now - s.synced_at < self._stale_for for s in known.values())
            )
            if fresh or usable:
                # Read it now: data that cannot be read is asked for instead.
                cached = await self._cached(patient_id, by_id[source.id], kept, known, load)
                if cached is not None:
                    served[source.id] = cached
                    if not fresh:
                        revalidating.add(source.id)
                    continue
            elif all(now - s.full_synced_at < self._full_every for s in known.values()):
                since[source.id] = self._since(known)
        skip = plan.skip | set(served)
        asks = any(source.id not in skip for source in self._aggregator.sources)
        whole, times = self._aggregator.deadline, self.finish_times
        elapsed = time.monotonic() - started
        patience = math.inf if arrival is None else times.turn_patience(whole, elapsed)
        async with self.turns.turn(started, patience) if asks else _no_turn() as turn:
            if arrival is None:
                # A read nobody waits on (outside an HTTP request: a Bulk export's) waits
                # for its turn as long as it takes; its deadline counts from its turn.
                started = time.monotonic()
            # No turn in time: the sources are not asked (reported ``timeout``).
            elapsed, busy = time.monotonic() - started, self.turns.waiting > 0
            share = 0.0 if turn is None else times.sources_share(whole, elapsed, busy)
            collected = await self._ask(
                person, patient_id, types, states, served, plan, skip, since, share, load, turn
            )
            if arrival is not None and asks and load:
                # A streamed answer's time to start grows with the record (its plan pass):
                # not a measure of how busy the worker is.
                arrival.fanned_out = time.monotonic()
        for report in collected.reports:
            if report.source_id in revalidating:
                report.status = SourceStatus.REVALIDATING
        if self.revalidator is not None:
            for source_id in sorted(revalidating):
                self.revalidator.start(person, patient_id, source_id, types)
        if self._on_collected is not None:
            self._on_collected(collected.reports)
        return collected

    async def refresh(
        self, person: PersonIdentifier, patient_id: str, source_id: str, types: Sequence[str]
    ) -> SourceReport | None:
        """Ask one source again for the person's ``types`` and every other type cached of
        it (one refresh serves every read of the person), and store its answer as a read
        would, in a refresh slot (waited for as long as it takes): a background refresh of
        stale data. A failure leaves the cache as it was. The source's report, or None
        when the engagement index says it holds nothing for the person."""
        now = self._clock()
        plan = await self._engagement.plan(patient_id, now)
        if source_id in plan.skip:
            return None
        states = await self._cache.states(patient_id, [PATIENT, *RESOURCE_TYPES], now)
        known = states.get(source_id, {})
        types = sorted({*types, *known} - {PATIENT})
        kept = [PATIENT, *types]
        since: dict[str, datetime] = {}
        if all(t in known for t in kept) and all(
            now - s.full_synced_at < self._full_every for s in known.values()
        ):
            since[source_id] = self._since(known)
        skip = frozenset(s.id for s in self._aggregator.sources if s.id != source_id)
        plan, deadline = Plan(skip=skip, full=False), self._aggregator.deadline
        async with self.turns.turn(time.monotonic()) as turn:
            collected = await self._ask(
                person, patient_id, types, states, {}, plan, skip, since, deadline, False, turn
            )
        return next(r for r in collected.reports if r.source_id == source_id)

    @staticmethod
    def _since(known: Mapping[str, SyncState]) -> datetime:
        """Where a refresh of changes only reaches back to."""
        return min(s.synced_at for s in known.values()) - SINCE_OVERLAP

    async def _ask(
        self,
        person: PersonIdentifier,
        patient_id: str,
        types: Sequence[str],
        states: dict[str, dict[str, SyncState]],
        served: dict[str, NormalisedSource],
        plan: Plan,
        skip: frozenset[str],
        since: dict[str, datetime],
        deadline: float,
        load: bool,
        turn: Turn | None,
    ) -> Collected:
        """Ask the sources not in ``skip`` within ``deadline`` seconds, then store and
        serve their answers (see :meth:`_finish`), in ``turn`` (resumed if it was passed
        on while the sources were waited for)."""
        pages = Pages(
            self._cache,
            person,
            patient_id,
            frozenset(types),
            self._decoded.budget,
            store=lambda record, report, sealed: self._store_pages(
                patient_id, record, report, sealed, types, load
            ),
        )
        gathered = await self._aggregator.gather(
            person,
            types,
            skip=skip,
            since=since,
            deadline=deadline,
            sinks=pages,
            usual=FinishTimes.unhurried(self._aggregator.deadline),
        )
        if turn is not None:
            await turn.resume()
        return await self._finish(
            person, patient_id, types, gathered, states, served, plan, pages, load
        )

    async def _finish(
        self,
        person: PersonIdentifier,
        patient_id: str,
        types: Sequence[str],
        gathered: Gathered,
        states: dict[str, dict[str, SyncState]],
        served: dict[str, NormalisedSource],
        plan: Plan,
        pages: Pages,
        load: bool,
    ) -> Collected:
        """Learn, normalise and store what the sources answered; fall back to the cache."""
        kept = [PATIENT, *types]
        fresh = set(served)
        by_id = {source.id: source for source in self._aggregator.sources}
        asked = [r for r in gathered.reports if r.source_id not in fresh]
        await self._engagement.learn(patient_id, asked, full=plan.full)
        reports = {report.source_id: report for report in gathered.reports}
        wanted = frozenset(types)
        for record in gathered.records:
            report = reports[record.source.id]
            if record.paged:  # stored as soon as it answered (see Pages.answered)
                stored = pages.stored_for(record.source.id)
            elif (
                normalised := normalise_source(record, report, person, patient_id, wanted)
            ) is not None:
                stored = await self._store(
                    patient_id,
                    normalised,
                    types,
                    report,
                    full=record.changed_since is None,
                    load=load,
                )
            else:
                stored = None
            if stored is None:  # not the person's, or a change to data it cannot read
                await self._cache.forget(patient_id, record.source.id)
                continue
            served[record.source.id] = stored
        for report in gathered.reports:
            state = states.get(report.source_id)
            if report.source_id in fresh:
                _from_cache(report, SourceStatus.CACHED, state, served[report.source_id])
            elif report.status is SourceStatus.NO_DATA and state:
                await self._cache.forget(patient_id, report.source_id)
            elif (
                report.status in (SourceStatus.FAILED, SourceStatus.TIMEOUT)
                and report.reason != "identity"
                and state
                and all(t in state for t in kept)  # never part of what was asked for
            ):
                cached = await self._cached(patient_id, by_id[report.source_id], kept, state, load)
                if cached is not None:
                    served[report.source_id] = cached
                    _from_cache(report, SourceStatus.STALE, state, cached)
        ordered = [served[s.id] for s in self._aggregator.sources if s.id in served]
        return Collected(sources=ordered, reports=gathered.reports)

    async def _cached(
        self,
        patient_id: str,
        source: Source,
        kept: Sequence[str],
        state: dict[str, SyncState],
        load: bool,
    ) -> NormalisedSource | None:
        """One source's cached data of ``kept`` types (without ``load``, only the Patient):
        decoded from memory when this process has decoded that version before, else read
        from the store. Data that cannot be read (purged meanwhile, or under another key)
        is removed: None."""
        by_type: dict[str, list[FhirResource]] = {}
        missing = []
        for resource_type in kept if load else [PATIENT]:
            synced_at = state[resource_type].synced_at
            remembered = self._decoded.get(patient_id, source.id, resource_type, synced_at)
            if remembered is not None:
                by_type[resource_type] = remembered.resources
            else:
                missing.append(resource_type)
        if missing:
            loaded = (await self._cache.load(patient_id, [source.id], missing)).get(source.id, {})
            for resource_type in missing:
                if resource_type in loaded:
                    by_type[resource_type] = loaded[resource_type]
                    synced_at = state[resource_type].synced_at
                    self._decoded.remember(
                        patient_id, source.id, resource_type, synced_at, loaded[resource_type]
                    )
        if any(t not in by_type for t in kept if load) or not by_type.get(PATIENT):
            await self.forget(patient_id, source.id)
            return None
        return _assembled(source, by_type, kept, {t: state[t].synced_at for t in kept})

    async def forget(self, patient_id: str, source_id: str) -> None:
        """Remove a source's cached data that cannot be read (it is fetched again)."""
        log.warning("cached data of source %s could not be read: removed", source_id)
        await self._cache.forget(patient_id, source_id)

    def snapshot(self, patient_id: str) -> AbstractAsyncContextManager[CacheSnapshot]:
        """The person's cached data, unchanged while open: see :meth:`Streams.snapshot`
        (at most ``max_streams`` open at once, else refused within the request deadline)."""
        return self._streams.snapshot(patient_id, self._aggregator.deadline)

    def chunks(
        self, snapshot: CacheSnapshot, patient_id: str, source_id: str, resource_type: str
    ) -> AsyncGenerator[tuple[list[FhirResource], list[bytes | None] | None], None]:
        """One source's cached resources of one type, a chunk at a time, with their
        duplicate digests where known: see :meth:`Streams.chunks`."""
        return self._streams.chunks(snapshot, patient_id, source_id, resource_type)

    async def _store_pages(
        self,
        patient_id: str,
        record: SourceRecord,
        report: SourceReport,
        sealed: dict[str, Sealed],
        types: Sequence[str],
        load: bool,
    ) -> NormalisedSource:
        """Store a full answer whose pages were normalised and ``sealed`` as they arrived;
        returns what is now known (without ``load``, the Patient only)."""
        source = record.source
        patient = self._cache.sealer(patient_id, source.id, PATIENT)
        patient.take([record.patient])
        synced_at = report.synced_at or datetime.now(UTC)
        await self._cache.store(
            patient_id, source.id, {PATIENT: patient.finish(), **sealed}, synced_at
        )
        by_type = {PATIENT: [record.patient]}
        self._decoded.remember(patient_id, source.id, PATIENT, synced_at, by_type[PATIENT])
        unread = []
        for resource_type in types:
            resources = sealed[resource_type].resources
            if resources is None:
                unread.append(resource_type)
                continue
            self._decoded.remember(
                patient_id,
                source.id,
                resource_type,
                synced_at,
                resources,
                sealed[resource_type].digests,
            )
            if load:
                by_type[resource_type] = resources
        if load and unread:
            loaded = (await self._cache.load(patient_id, [source.id], unread)).get(source.id, {})
            by_type |= loaded
        kept = [PATIENT, *types]
        return _assembled(source, by_type, kept, dict.fromkeys(kept, synced_at))

    async def _store(
        self,
        patient_id: str,
        normalised: NormalisedSource,
        types: Sequence[str],
        report: SourceReport,
        *,
        full: bool,
        load: bool,
    ) -> NormalisedSource | None:
        """Cache a fresh answer; returns what is now known (with earlier data if partial;
        without ``load``, the Patient only). A partial answer whose earlier data cannot
        be read (under another key) cannot be completed: the source is reported failed,
        and None returned so nothing of it is kept and the next read asks in full."""
        by_type: dict[str, list[FhirResource]] = {t: [] for t in types}
        for resource in normalised.resources:
            by_type[resource["resourceType"]].append(resource)
        by_type[PATIENT] = [normalised.patient]
        synced_at = report.synced_at or datetime.now(UTC)
        # The Patient is always fetched whole; in a partial refresh it replaces the cached
        # one by id like any changed resource.
        try:
            stored = await self._cache.save(
                patient_id, normalised.source.id, by_type, synced_at, full=full
            )
        except CacheCorrupt:
            log.warning("cached data of source %s could not be read", normalised.source.id)
            report.unreadable_cache("its cached data could not be read: asked in full next time")
            return None
        for resource_type, resources in stored.items():
            self._decoded.remember(
                patient_id, normalised.source.id, resource_type, synced_at, resources
            )
        kept = [PATIENT, *types]
        if not full:
            report.counts(sum(len(stored[t]) for t in types))
        if not load:
            stored = {PATIENT: stored[PATIENT]}
        return _assembled(normalised.source, stored, kept, dict.fromkeys(kept, synced_at))


def _no_turn() -> AbstractAsyncContextManager[Turn | None]:
    """No turn: for a request that asks no source."""
    return contextlib.nullcontext(None)


def _assembled(
    source: Source,
    by_type: Mapping[str, list[FhirResource]],
    kept: Sequence[str],
    synced_at: Mapping[str, datetime],
) -> NormalisedSource:
    """One source's data of ``kept`` types (those in ``by_type``), versioned by the sync
    time of each type."""
    resources = [r for t in kept if t != PATIENT for r in by_type.get(t, ())]
    version = (source.id, *((t, synced_at[t]) for t in kept))
    return NormalisedSource(source, by_type[PATIENT][0], resources, version)


def _from_cache(
    report: SourceReport,
    status: SourceStatus,
    state: dict[str, SyncState] | None,
    served: NormalisedSource,
) -> None:
    synced_at = min(s.synced_at for s in state.values()) if state else None
    report.served_from_cache(status, synced_at, len(served.resources))
