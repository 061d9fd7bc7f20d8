"""A person's merged record read as a stream: a large record in flat memory.

``$everything`` may return tens of thousands of resources. Rather than merged in
memory, the record is read twice from one snapshot of the cache
(:meth:`gateway.collect.collector.Collector.snapshot`), a chunk at a time, in the order the
in-memory merge uses (sources in configuration order, then types, then stored order):

1. **plan** (when the stream is opened): for every resource, whether the decision hides
   it, whether it repeats an earlier fact (only the small duplicate keys are kept, see
   :class:`gateway.merge.dedup.DuplicatePlan`) and whether it matches. Out of it come the
   number of matches, the paging snapshot of their ids, and the counts the access log
   records, all before anything is sent;
2. **emit** (:meth:`RecordStream.page`): the same resources again, the kept matches of
   one page passed on as they are read, each merged one followed by its Provenance; a
   shown report's references to hidden results are left out
   (:meth:`consent.visibility.Visibility.concealing`, from the hidden keys the plan noted).

The snapshot keeps both passes on the same data whatever refreshes meanwhile. Hiding
comes before merging, as in :meth:`gateway.access.reader.RecordReader._merge`: a fact reported
by a visible and a hidden source is kept from the visible one, and nothing names the
hidden one. What is held in memory is the keys of the planned resources, the numbers of
the duplicates, the ids of hidden results and referrals and one chunk
(:data:`gateway.collect.cache.CHUNK_SIZE` resources) at a time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, field

import anyio

from adapters.base import FhirResource
from consent.decision import AccessDecision
from consent.visibility import CONCEALED_TYPES, Visibility, resource_key
from fhir_profiles.identifiers import PersonIdentifier
from gateway.answer.paging import SnapshotDigest
from gateway.collect.cache import CacheCorrupt, CacheSnapshot
from gateway.collect.collector import Collected, Collector
from gateway.merge.dedup import DuplicatePlan
from gateway.merge.record import NormalisedSource, origins, patient_of, provenance
from gateway.sources import SourceReport

Match = Callable[[FhirResource], bool]


@dataclass(slots=True)
class RecordStream:
    """One read of a person's merged record of some types, planned and ready to emit.

    Holds a database connection until :meth:`aclose`.
    """

    patient: FhirResource | None
    reports: list[SourceReport]
    #: Matches, the Patient included.
    total: int
    #: :func:`gateway.answer.paging.snapshot_of` the matches' ids, in order.
    snapshot: str
    #: Every visible merged resource read (matching or not), by type: for the access log.
    counts: Counter[str]
    #: How many resources each source contributed that may be shown (before duplicates
    #: were merged): the count its status reports.
    shown: Counter[str]
    _collector: Collector
    _cache: CacheSnapshot
    _stack: AsyncExitStack
    _patient_id: str
    _sources: list[NormalisedSource]
    _types: Sequence[str]
    _decision: AccessDecision
    _matches: Match
    _plan: DuplicatePlan = field(default_factory=DuplicatePlan)
    _dropped: set[int] = field(default_factory=set)
    #: ``Type/id`` of the hidden resources shown ones may not tell of (complete once
    #: planned; see :meth:`consent.visibility.Visibility.concealing`).
    _hidden: set[str] = field(default_factory=set)

    async def _resources(
        self,
    ) -> AsyncGenerator[tuple[str, list[FhirResource], list[bytes | None] | None], None]:
        """Every visible resource, a chunk at a time, in the merge's order, with the
        chunk's source and the resources' duplicate digests where known."""
        visibility = Visibility(self._decision)
        for source in self._sources:
            source_id = source.source.id
            for resource_type in self._types:
                chunks = (
                    _held(source, resource_type)
                    if source.held
                    else self._collector.chunks(
                        self._cache, self._patient_id, source_id, resource_type
                    )
                )
                try:
                    async with aclosing(chunks):
                        async for chunk, digests in chunks:
                            shown = visibility.shown(chunk)
                            self._hidden.update(
                                resource_key(r)
                                for r, show in zip(chunk, shown, strict=True)
                                if not show and r.get("resourceType") in CONCEALED_TYPES
                            )
                            yield (
                                source_id,
                                [r for r, show in zip(chunk, shown, strict=True) if show],
                                None
                                if digests is None
                                else [d for d, show in zip(digests, shown, strict=True) if show],
                            )
                except CacheCorrupt as exc:
                    raise _Unreadable(source_id) from exc

    async def _plan_pass(self) -> None:
        plan, dropped = self._plan, self._dropped
        matches, counts = self._matches, self.counts
        digest = SnapshotDigest()
        if self.patient is not None:
            digest.add(f"Patient/{self.patient['id']}")
        total = 1 if self.patient is not None else 0
        number = 0
        last_source = self._sources[-1].source.id if self._sources else None
        async with aclosing(self._resources()) as resources:
            async for source_id, chunk, digests in resources:
                self.shown[source_id] += len(chunk)
                last = source_id == last_source
                for index, resource in enumerate(chunk):
                    kept = (
                        plan.offer(number, resource, last=last)
                        if digests is None
                        else plan.offer_digest(number, resource, digests[index], last=last)
                    )
                    if kept:
                        counts[resource["resourceType"]] += 1
                        if matches(resource):
                            total += 1
                            digest.add(f"{resource['resourceType']}/{resource['id']}")
                    else:
                        dropped.add(number)
                    number += 1
        self.total, self.snapshot = total, digest.value()

    async def page(self, offset: int, count: int) -> AsyncGenerator[tuple[str, FhirResource], None]:
        """The matches numbered ``offset`` to ``offset + count - 1`` (the Patient is 0),
        as ``("match", resource)``, each merged one followed by ``("include",
        provenance)``."""
        end = offset + count
        position = 0
        if self.patient is not None:
            if offset == 0 and end > 0:
                yield "match", self.patient
            position = 1
        if position >= end:
            return
        plan, dropped, matches = self._plan, self._dropped, self._matches
        visibility = Visibility(self._decision)
        by_source = {s.source.id: s.source for s in self._sources}
        number = -1
        async with aclosing(self._resources()) as resources:
            async for _, chunk, _ in resources:
                for resource in chunk:
                    number += 1
                    if number in dropped or not matches(resource):
                        continue
                    if position >= offset:
                        shown = visibility.concealing(resource, self._hidden, self._types)
                        kept = plan.kept(number, shown)
                        yield "match", kept
                        duplicates = plan.groups.get(number)
                        if duplicates:
                            yield "include", provenance(kept, duplicates, by_source)
                    position += 1
                    if position >= end:
                        return

    async def aclose(self) -> None:
        """Give back the connection (also when the client went away mid-stream)."""
        with anyio.CancelScope(shield=True):
            await self._stack.aclose()


async def open_stream(
    collector: Collector,
    collected: Collected,
    decision: AccessDecision,
    person: PersonIdentifier,
    patient_id: str,
    types: Sequence[str],
    *,
    with_patient: bool,
    matches: Match,
) -> RecordStream:
    """Plan the stream of what ``collected`` (collected without loading) holds of
    ``types``. A source whose cached data cannot be read is left out whole, reported
    failed, and removed from the cache, and the plan starts over without it."""
    stack = AsyncExitStack()
    try:
        cache = await stack.enter_async_context(collector.snapshot(patient_id))
        sources = list(collected.sources)
        while True:
            stream = RecordStream(
                patient=(
                    patient_of(
                        sources,
                        person,
                        patient_id,
                        Visibility(decision).named_sources(origins(sources)),
                    )
                    if with_patient
                    else None
                ),
                reports=collected.reports,
                total=0,
                snapshot="",
                counts=Counter(),
                shown=Counter(),
                _collector=collector,
                _cache=cache,
                _stack=stack,
                _patient_id=patient_id,
                _sources=sources,
                _types=types,
                _decision=decision,
                _matches=matches,
            )
            try:
                await stream._plan_pass()
            except _Unreadable as unreadable:
                broken = unreadable.source_id
                sources = [s for s in sources if s.source.id != broken]
                await collector.forget(patient_id, broken)
                for report in collected.reports:
                    if report.source_id == broken:
                        report.unreadable_cache("its cached data could not be read")
                continue
            return stream
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stack.aclose()
        raise


async def _held(
    source: NormalisedSource, resource_type: str
) -> AsyncGenerator[tuple[list[FhirResource], list[bytes | None] | None], None]:
    """A held source's resources of one type (the person's own source), as one chunk."""
    chunk = [r for r in source.resources if r.get("resourceType") == resource_type]
    if chunk:
        yield chunk, None


class _Unreadable(Exception):
    """A chunk of one source's cached data does not decrypt or is missing."""

    def __init__(self, source_id: str) -> None:
        super().__init__(source_id)
        self.source_id = source_id
