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
from collections.abc import Awaitable, Container, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from adapters.base import (
    FhirResource,
    PagedSource,
    PageSink,
    SourceAdapter,
    supports_pages,
    supports_since,
)
from adapters.errors import SourceError, TypeNotOffered
from fhir_profiles.identifiers import PersonIdentifier
from gateway.collect.resilience import (
    CallBudget,
    Clock,
    MonotonicClock,
    call_budget,
    failure_reason,
)
from gateway.sources import Gathered, PageSinks, Source, SourceRecord, SourceReport, SourceStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The backstop fires this much after a source's deadline, so that the resilient
#: wrapper's own deadline fires first and can count the timeout against the source.
BACKSTOP_GRACE = 0.05


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


async def _offered(
    search: Awaitable[list[FhirResource]], not_offered: list[str]
) -> list[FhirResource]:
    """What ``search`` found; none where the source serves no such type at all (noted in
    ``not_offered``; a paged search's sink then holds none of it)."""
    try:
        return await search
    except TypeNotOffered as exc:
        not_offered.append(exc.resource_type)
        return []


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

        if deadline <= now:
            # Its share was spent before it could be asked (the request had no turn in
            # time): not asked at all, and not held against it.
            log.warning("source %s not asked: the request's time ran out", source.id)
            return None, report(SourceStatus.TIMEOUT, reason="timeout")
        try:
            with call_budget(budget):
                backstop = budget.deadline - self._clock.now() + BACKSTOP_GRACE
                async with asyncio.timeout(backstop):
                    patient = await source.adapter.find_patient(person)
                    if patient is None:
                        return None, report(SourceStatus.NO_DATA)
                    patient_id = str(patient.get("id", ""))
                    not_offered: list[str] = []
                    batches = await _all_or_nothing(
                        [
                            _offered(
                                _search_into(adapter, t, patient_id, sinks(source, patient, t))
                                if paged and sinks is not None and supports_pages(adapter)
                                else _search(adapter, t, patient_id, since),
                                not_offered,
                            )
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
        answered = report(
            SourceStatus.OK, resource_count=len(resources), not_offered=sorted(not_offered)
        )
        if paged and sinks is not None:
            await sinks.answered(record, answered)
        return record, answered
