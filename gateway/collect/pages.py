"""A collect's full answers, normalised and sealed into the cache's chunks page by page
as they arrive, so that no step holds a source's whole answer; each source's answer is
handed over sealed (:meth:`Pages.sealed`) as soon as it is complete.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from adapters.base import FhirResource, PageSink
from fhir_profiles.identifiers import PersonIdentifier
from gateway.collect.cache import ChunkSealer, KeepBudget, RecordCache, Sealed
from gateway.merge.dedup import duplicate_digest
from gateway.merge.linking import LinkError
from gateway.merge.record import NormalisedSource, Notes, SourceNormaliser, identity_failure
from gateway.sources import Source, SourceRecord, SourceReport
from store.db import StoreUnavailable


class Pages:
    """The sinks a collect's full answers go into, page by page as they arrive: per
    source a normaliser, made once its Patient is known, and per type a sink that
    normalises each page and seals it into chunks. A source's answer is stored
    (``store``, given its sealed parts) as soon as it is complete, while slower sources
    are still being waited for, and then let go: nothing of it stays here."""

    def __init__(
        self,
        cache: RecordCache,
        person: PersonIdentifier,
        patient_id: str,
        wanted: frozenset[str],
        keep: int,
        *,
        store: Callable[
            [SourceRecord, SourceReport, dict[str, Sealed]], Awaitable[NormalisedSource]
        ],
    ) -> None:
        self._cache = cache
        self._person = person
        self._patient_id = patient_id
        self._wanted = wanted
        self._keep = KeepBudget(keep)
        self._store = store
        self._normalisers: dict[str, SourceNormaliser | LinkError] = {}
        self._sinks: dict[str, dict[str, NormalisingSink]] = {}
        self._stored: dict[str, NormalisedSource | StoreUnavailable | None] = {}

    async def answered(self, record: SourceRecord, report: SourceReport) -> None:
        # A failure to store (the database) is raised by stored_for, once every source is
        # done, not into the fan-out: no source is left running unattended.
        sealed = self._sealed(record, report)
        try:
            self._stored[record.source.id] = (
                None if sealed is None else await self._store(record, report, sealed)
            )
        except StoreUnavailable as exc:
            self._stored[record.source.id] = exc

    def stored_for(self, source_id: str) -> NormalisedSource | None:
        """What :meth:`answered` stored for a source (None: not the person's)."""
        stored = self._stored[source_id]
        if isinstance(stored, StoreUnavailable):
            raise stored
        return stored

    def __call__(self, source: Source, patient: FhirResource, resource_type: str) -> PageSink:
        normaliser = self._normalisers.get(source.id)
        if normaliser is None:
            try:
                normaliser = SourceNormaliser(
                    source, patient, self._person, self._patient_id, self._wanted, None
                )
            except LinkError as exc:  # reported, and nothing kept, when the answer is in
                normaliser = exc
            self._normalisers[source.id] = normaliser
        sealer = self._cache.sealer(self._patient_id, source.id, resource_type, self._keep)
        sink = NormalisingSink(None if isinstance(normaliser, LinkError) else normaliser, sealer)
        self._sinks.setdefault(source.id, {})[resource_type] = sink
        return sink

    def _sealed(self, record: SourceRecord, report: SourceReport) -> dict[str, Sealed] | None:
        """A source's complete answer, each type's last chunk sealed, with its count and
        notes reported, its sinks let go; None (and the identity failure reported) if the
        source's Patient does not link to the person."""
        normaliser = self._normalisers.get(record.source.id)
        sinks = self._sinks.pop(record.source.id, {})
        if isinstance(normaliser, LinkError):
            identity_failure(report, normaliser)
            return None
        sealed = {t: sink.sealer.finish() for t, sink in sinks.items()}
        notes = Notes()
        for sink in sinks.values():
            notes.add(sink.notes)
        report.counts(sum(s.count for s in sealed.values()) + notes.taken_off)
        notes.report_to(report)
        return sealed


class NormalisingSink:
    """One search's pages, normalised and sealed as they arrive (dropped if the source's
    Patient does not link to the person)."""

    def __init__(self, normaliser: SourceNormaliser | None, sealer: ChunkSealer) -> None:
        self._normaliser = normaliser
        self.sealer = sealer
        self.notes = Notes()

    def restart(self) -> None:
        self.sealer.restart()
        self.notes = Notes()

    def expect(self, total: int) -> None:
        self.sealer.expect(total)

    def take(self, page: list[FhirResource]) -> None:
        if self._normaliser is not None:
            normalised = self._normaliser.normalise(page, self.notes)
            # Made now, while the source is still paging, rather than in a plan pass; only
            # for what is kept in memory (a plan over what is read back makes its own).
            digests = [duplicate_digest(r) for r in normalised] if self.sealer.keeps else None
            self.sealer.take(normalised, digests)
