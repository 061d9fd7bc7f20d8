"""What the gateway knows of its sources and what each did for a request: the vocabulary
the fan-out, the merge, the record reader and the answers share.

A :class:`SourceReport` is made by the fan-out (:mod:`gateway.collect.fanout`) and
amended on the way out, only through its methods (what normalising found: drops, resources
of types the gateway does not serve, references it cannot resolve; served from the
cache, its Patient not the person's, what the reader may be shown); the answer shows it
to the client as it stands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from adapters.base import FhirResource, PageSink, SourceAdapter
from adapters.config import SourceConfig
from fhir_profiles.coverage import SourceCoverage


class SourceStatus(StrEnum):
    OK = "ok"  # answered, with data for the person
    NO_DATA = "no-data"  # answered: it has no record of the person
    TIMEOUT = "timeout"  # did not answer within its deadline
    FAILED = "failed"  # answered with an error, or could not be reached
    NOT_ASKED = "not-asked"  # the engagement index says it holds nothing for the person
    CACHED = "cached"  # not asked: its data was synced within the freshness window
    STALE = "stale"  # asked and failed: its data comes from the cache of an earlier sync
    #: not asked in time: its cached data, past the freshness window but within the stale
    #: bound, is served while it is refreshed in the background
    REVALIDATING = "revalidating"

    @property
    def has_data(self) -> bool:
        """Data of the source's is in the answer (fresh or from the cache)."""
        return self in (
            SourceStatus.OK,
            SourceStatus.CACHED,
            SourceStatus.STALE,
            SourceStatus.REVALIDATING,
        )

    @property
    def current(self) -> bool:
        """What the answer holds of the source is up to date (within the freshness window)."""
        return self in (SourceStatus.OK, SourceStatus.NO_DATA, SourceStatus.CACHED)

    @property
    def missed(self) -> bool:
        """The source was asked and did not answer in time (what the answer holds of it,
        if anything, is from an earlier sync): the answer may be incomplete. Not a source
        left unasked because it holds nothing for the person, nor one whose cached data is
        served while it is asked again in the background."""
        return self in (SourceStatus.TIMEOUT, SourceStatus.FAILED, SourceStatus.STALE)


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
    #: Resources of types the gateway does not serve in the source's answer, per type:
    #: not served, not in ``resource_count``.
    unsupported: dict[str, int] = field(default_factory=dict)
    #: References in the source's served resources to what no answer holds (a type the
    #: gateway does not serve, another Patient), per target type.
    unresolved: dict[str, int] = field(default_factory=dict)
    #: The asked types the source serves no such thing of at all (it said so): none of
    #: them is in its answer, for anyone. A fact about the source, shown to every reader.
    not_offered: list[str] = field(default_factory=list)
    #: What the source shares and since when (a fact about the source, shown to every
    #: reader who may know of it): set as the answer is made.
    coverage: SourceCoverage | None = None

    def serves_nothing(self, warning: str, *, reason: str | None = None) -> None:
        """Nothing of this source is served after all (its Patient is not the person's,
        or its cached data cannot be read): it failed, with ``warning`` saying why. No
        served resource of it holds a reference, resolved or not."""
        self.status = SourceStatus.FAILED
        self.resource_count = 0
        self.unresolved.clear()
        if reason is not None:
            self.reason = reason
        self.warnings.append(warning)

    def counts(self, resources: int) -> None:
        """The source's answer holds ``resources`` resources, before any are dropped."""
        self.resource_count = resources

    def notes(self, warnings: Iterable[str], *, dropped: int = 0) -> None:
        """What normalising the answer found: ``warnings`` to show, and ``dropped``
        resources taken off the count (each drop is among the warnings)."""
        self.warnings.extend(warnings)
        self.resource_count -= dropped

    def left_unsupported(self, counts: Mapping[str, int]) -> None:
        """The answer held ``counts`` resources (per type) of types the gateway does not
        serve: counted here, and taken off the resource count, since none is served."""
        for resource_type, count in counts.items():
            self.unsupported[resource_type] = self.unsupported.get(resource_type, 0) + count
            self.resource_count -= count

    def left_unresolved(self, counts: Mapping[str, int]) -> None:
        """The served resources hold ``counts`` references (per target type) to what no
        answer holds: counted here, the references kept as they are."""
        for resource_type, count in counts.items():
            self.unresolved[resource_type] = self.unresolved.get(resource_type, 0) + count

    def served_from_cache(
        self, status: SourceStatus, synced_at: datetime | None, resources: int
    ) -> None:
        """What is served of the source comes from the cache (``CACHED``: fresh enough not
        to ask; ``REVALIDATING``: past that, asked again in the background; ``STALE``:
        asked and failed), as synced at ``synced_at``."""
        self.status = status
        self.synced_at = synced_at
        self.resource_count = resources
        if status is SourceStatus.CACHED:
            self.reason = None

    def unreadable_cache(self, warning: str) -> None:
        """The source's cached data cannot be read: none of it is served, and nothing of
        it is known to be synced."""
        self.serves_nothing(warning)
        self.synced_at = None

    def shows(self, resources: int, *, counts_before_hiding: bool = True) -> None:
        """Of a source with data, the reader may be shown ``resources`` resources: the
        count says nothing of what is hidden from them. Without
        ``counts_before_hiding``, what was counted before anything was hidden
        (:attr:`unsupported`, :attr:`unresolved`) is withheld too."""
        if self.status.has_data:
            self.resource_count = resources
        if not counts_before_hiding:
            self.unsupported.clear()
            self.unresolved.clear()


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
