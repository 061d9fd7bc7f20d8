"""Fan out to every source for one person, concurrently, each within its own deadline.

A slow or failing source never fails the whole answer: it is reported in its
:class:`SourceReport` and the others are served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from adapters.base import FhirResource, SourceAdapter
from adapters.config import SourceConfig
from adapters.errors import SourceError
from fhir_profiles.identifiers import PersonIdentifier

log = logging.getLogger(__name__)


class SourceStatus(StrEnum):
    OK = "ok"  # answered, with data for the person
    NO_DATA = "no-data"  # answered: it has no record of the person
    TIMEOUT = "timeout"  # did not answer within its deadline
    FAILED = "failed"  # answered with an error, or could not be reached


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
    #: A short machine-readable reason for a failure, e.g. ``timeout`` or ``unavailable``.
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SourceRecord:
    """The raw answer of one source: its Patient and the resources found for it."""

    source: Source
    patient: FhirResource
    resources: list[FhirResource]


@dataclass(slots=True)
class Gathered:
    records: list[SourceRecord]
    reports: list[SourceReport]


class Aggregator:
    """Asks every source for one person's data, concurrently."""

    def __init__(self, sources: Sequence[Source], deadline: float) -> None:
        self.sources = tuple(sources)
        self.deadline = deadline

    async def gather(self, person: PersonIdentifier, resource_types: Sequence[str]) -> Gathered:
        """Fetch ``resource_types`` for ``person`` from every source."""
        results = await asyncio.gather(
            *(self._one(source, person, resource_types) for source in self.sources)
        )
        records = [record for record, _ in results if record is not None]
        return Gathered(records=records, reports=[report for _, report in results])

    async def _one(
        self, source: Source, person: PersonIdentifier, resource_types: Sequence[str]
    ) -> tuple[SourceRecord | None, SourceReport]:
        started = time.perf_counter()

        def report(status: SourceStatus, **kwargs: object) -> SourceReport:
            answered = status in (SourceStatus.OK, SourceStatus.NO_DATA)
            return SourceReport(
                source_id=source.id,
                name=source.config.display_name,
                status=status,
                answered_at=datetime.now(UTC) if answered else None,
                elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
                **kwargs,  # type: ignore[arg-type]
            )

        try:
            async with asyncio.timeout(min(source.config.timeout, self.deadline)):
                patient = await source.adapter.find_patient(person)
                if patient is None:
                    return None, report(SourceStatus.NO_DATA)
                patient_id = str(patient.get("id", ""))
                batches = await asyncio.gather(
                    *(source.adapter.search(t, patient_id) for t in resource_types)
                )
        except TimeoutError:
            log.warning("source %s timed out", source.id)
            return None, report(SourceStatus.TIMEOUT, reason="timeout")
        except SourceError as exc:
            log.warning("source %s failed: %s (%s)", source.id, exc.reason, type(exc).__name__)
            status = SourceStatus.TIMEOUT if exc.reason == "timeout" else SourceStatus.FAILED
            return None, report(status, reason=exc.reason)
        resources = [resource for batch in batches for resource in batch]
        record = SourceRecord(source=source, patient=patient, resources=resources)
        return record, report(SourceStatus.OK, resource_count=len(resources))
