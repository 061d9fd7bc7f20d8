"""Fan out to every source for one person, concurrently, each within its own deadline.

A slow or failing source never fails the whole answer: it is reported in its
:class:`SourceReport` and the others are served.

Deadlines: :meth:`Aggregator.gather` is given what is left of the request's deadline
(:mod:`gateway.collect.deadline`; its own ``deadline`` when called alone); each source gets the
earlier of that and its own ``timeout``.
The source's deadline is published in a :class:`~gateway.collect.resilience.CallBudget` so the
source's :class:`~gateway.collect.resilience.ResilientAdapter` can fit retries and waits for a
slot inside it, and an ``asyncio`` timeout a little later is the backstop for adapters
that are not wrapped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Container, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from adapters.base import (
    FhirResource,
    PagedSource,
    PageSink,
    SourceAdapter,
    supports_pages,
    supports_since,
)
from adapters.config import SourceConfig
from adapters.errors import SourceError
from fhir_profiles.identifiers import PersonIdentifier
from gateway.collect.resilience import (
    CallBudget,
    Clock,
    MonotonicClock,
    call_budget,
    failure_reason,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The backstop fires this much after a source's deadline, so that the resilient
#: wrapper's own deadline fires first and can count the timeout against the source.
BACKSTOP_GRACE = 0.05


class SourceStatus(StrEnum):
    OK = "ok"  # answered, with data for the person
    NO_DATA = "no-data"  # answered: it has no record of the person
    TIMEOUT = "timeout"  # did not answer within its deadline
    FAILED = "failed"  # answered with an error, or could not be reached
    NOT_ASKED = "not-asked"  # the engagement index says it holds nothing for the person
    CACHED = "cached"  # not asked: its data was synced within the freshness window
    STALE = "stale"  # asked and failed: its data comes from the cache of an earlier sync

    @property
    def has_data(self) -> bool:
        """Data of the source's is in the answer (fresh or from the cache)."""
        return self in (SourceStatus.OK, SourceStatus.CACHED, SourceStatus.STALE)

    @property
    def current(self) -> bool:
        """What the answer holds of the source is up to date (within the freshness window)."""
        return self in (SourceStatus.OK, SourceStatus.NO_DATA, SourceStatus.CACHED)


@dataclass(frozen=True, slots=True)
class Source:
    """A configured source and the adapter that speaks its dialect."""

    config: SourceConfig
    adapter: SourceAdapter

    @property
    def id(self) -> str:
        return self.config.id


@dataclass(slots=True)
class SourceReport:
    """What one source did for one request; safe to show to the client."""

    source_id: str
    name: str
    status: SourceStatus
    #: When the source's answer was complete (None if it never answered).
    answered_at: datetime | None
    elapsed_ms: float
    resource_count: int = 0
    #: A short machine-readable reason for a failure: ``timeout``, ``unavailable``,
    #: ``rate-limited``, ``circuit-open``, ``auth`` or ``protocol``.
    reason: str | None = None
    #: The most tries any one call to the source needed (1 = no retry, 0 = not asked).
    attempts: int = 0
    #: When the data served for this source was last fetched from it in full or in part
    #: (for a fresh answer: when it was asked; for cached data: the cache's sync time).
    synced_at: datetime | None = None
    warnings: list[str] = field(default_factory=list)

    def serves_nothing(self, warning: str, *, reason: str | None = None) -> None:
        """Nothing of this source is served after all (its Patient is not the person's,
        or its cached data cannot be read): it failed, with ``warning`` saying why."""
        self.status = SourceStatus.FAILED
        self.resource_count = 0
        if reason is not None:
            self.reason = reason
        self.warnings.append(warning)


@dataclass(slots=True)
class SourceRecord:
    """The raw answer of one source: its Patient and the resources found for it."""

    source: Source
    patient: FhirResource
    resources: list[FhirResource]
    #: Set when only resources changed after this moment were asked for.
    changed_since: datetime | None = None
    #: The resources went to the sinks ``gather`` was given as they arrived (and are not
    #: in ``resources``).
    paged: bool = False


@dataclass(slots=True)
class Gathered:
    records: list[SourceRecord]
    reports: list[SourceReport]


async def _all_or_nothing(calls: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run ``calls`` concurrently; on the first failure cancel the rest and raise it.

    Unlike ``asyncio.gather``, no call outlives a failed sibling: a search still
    retrying after its source was already reported failed would hold one of the
    source's concurrency slots for nothing.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as failed:
        # The siblings were cancelled; the first real failure is the one to report.
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


class PageSinks(Protocol):
    """Where the sources' searches hand their pages as they arrive (see
    :meth:`Aggregator.gather`)."""

    def __call__(self, source: Source, patient: FhirResource, resource_type: str) -> PageSink:
        """The sink for one search of ``source``, whose own Patient (found first) is
        ``patient``."""
        ...

    async def answered(self, record: SourceRecord, report: SourceReport) -> None:
        """``record``'s source has answered in full: its sinks hold every page. Called
        as soon as it has, while slower sources are still being waited for."""
        ...


def _search(
    adapter: SourceAdapter, resource_type: str, patient_id: str, since: datetime | None
) -> Coroutine[Any, Any, list[FhirResource]]:
    if since is not None and supports_since(adapter):
        return adapter.search_since(resource_type, patient_id, since)
    return adapter.search(resource_type, patient_id)


async def _search_into(
    adapter: PagedSource, resource_type: str, patient_id: str, sink: PageSink
) -> list[FhirResource]:
    await adapter.search_into(resource_type, patient_id, sink)
    return []


class Aggregator:
    """Asks every source for one person's data, concurrently."""

    def __init__(
        self, sources: Sequence[Source], deadline: float, clock: Clock | None = None
    ) -> None:
        self.sources = tuple(sources)
        self.deadline = deadline
        #: The clock of the sources' deadlines: the resilient wrappers' clock.
        self._clock: Clock = clock or MonotonicClock()

    async def gather(
        self,
        person: PersonIdentifier,
        resource_types: Sequence[str],
        skip: Container[str] = (),
        since: Mapping[str, datetime] | None = None,
        deadline: float | None = None,
        sinks: PageSinks | None = None,
        usual: float | None = None,
    ) -> Gathered:
        """Fetch ``resource_types`` for ``person`` from every source not in ``skip``.

        A skipped source is not asked; its report says so (status ``not-asked``). For a
        source in ``since`` that can search by last update, only what changed after that
        moment is asked for; its record's ``changed_since`` says so. ``deadline`` (seconds)
        replaces the aggregator's own for this call; ``usual`` is what an unhurried call
        gives its sources (by default the aggregator's deadline): a source given less than
        that is not blamed for running out of time. With ``sinks``, a source asked for
        everything that can hand on pages (:class:`~adapters.base.PagedSource`) hands
        them to a sink per type as they arrive, and ``sinks.answered`` is told as soon as
        its answer is complete; its record says ``paged``.
        """
        request_deadline = self._clock.now() + (self.deadline if deadline is None else deadline)
        asked = [source for source in self.sources if source.id not in skip]
        since = since or {}
        results = await asyncio.gather(
            *(
                self._one(
                    source,
                    person,
                    resource_types,
                    request_deadline,
                    since.get(source.id),
                    sinks,
                    self.deadline if usual is None else usual,
                )
                for source in asked
            )
        )
        records = [record for record, _ in results if record is not None]
        reports = {report.source_id: report for _, report in results}
        for source in self.sources:
            if source.id not in reports:
                reports[source.id] = SourceReport(
                    source_id=source.id,
                    name=source.config.display_name,
                    status=SourceStatus.NOT_ASKED,
                    answered_at=None,
                    elapsed_ms=0.0,
                    reason="engagement-index",
                )
        return Gathered(records=records, reports=[reports[s.id] for s in self.sources])

    async def _one(
        self,
        source: Source,
        person: PersonIdentifier,
        resource_types: Sequence[str],
        request_deadline: float,
        since: datetime | None,
        sinks: PageSinks | None,
        usual_share: float,
    ) -> tuple[SourceRecord | None, SourceReport]:
        started = time.perf_counter()
        asked_at = datetime.now(UTC)
        if since is not None and not supports_since(source.adapter):
            since = None
        adapter = source.adapter
        paged = since is None and sinks is not None and supports_pages(adapter)
        now = self._clock.now()
        usual = min(source.config.timeout, usual_share)
        deadline = min(now + source.config.timeout, request_deadline)
        # Less than the usual time (the request waited for its turn): a timeout is then
        # the gateway's doing, not the source's, and must not open its circuit.
        budget = CallBudget(deadline=deadline, blames_source=deadline - now >= usual * 0.95)

        def report(status: SourceStatus, **kwargs: object) -> SourceReport:
            answered = status in (SourceStatus.OK, SourceStatus.NO_DATA)
            return SourceReport(
                source_id=source.id,
                name=source.config.display_name,
                status=status,
                answered_at=datetime.now(UTC) if answered else None,
                elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
                attempts=budget.attempts,
                # Anything changed after the request went out is caught by the next sync.
                synced_at=asked_at if answered else None,
                **kwargs,  # type: ignore[arg-type]
            )

        try:
            with call_budget(budget):
                backstop = budget.deadline - self._clock.now() + BACKSTOP_GRACE
                async with asyncio.timeout(backstop):
                    patient = await source.adapter.find_patient(person)
                    if patient is None:
                        return None, report(SourceStatus.NO_DATA)
                    patient_id = str(patient.get("id", ""))
                    batches = await _all_or_nothing(
                        [
                            _search_into(adapter, t, patient_id, sinks(source, patient, t))
                            if paged and sinks is not None and supports_pages(adapter)
                            else _search(adapter, t, patient_id, since)
                            for t in resource_types
                        ]
                    )
        except TimeoutError:
            log.warning("source %s timed out", source.id)
            return None, report(SourceStatus.TIMEOUT, reason="timeout")
        except SourceError as exc:
            reason = failure_reason(exc)
            log.warning("source %s failed: %s (%s)", source.id, reason, type(exc).__name__)
            status = SourceStatus.TIMEOUT if reason == "timeout" else SourceStatus.FAILED
            return None, report(status, reason=reason)
        resources = [resource for batch in batches for resource in batch]
        record = SourceRecord(
            source=source, patient=patient, resources=resources, changed_since=since, paged=paged
        )
        answered = report(SourceStatus.OK, resource_count=len(resources))
        if paged and sinks is not None:
            await sinks.answered(record, answered)
        return record, answered
