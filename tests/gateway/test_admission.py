"""Admission: a worker asks sources for a bounded number of requests at once; the rest
wait their turn for a share of their deadline, then go ahead anyway."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from adapters.base import FhirResource
from adapters.config import SourceConfig
from fhir_profiles.identifiers import PersonIdentifier, parse_person_identifier
from gateway.collect.cache import RecordCache
from gateway.collect.collector import Collector
from gateway.collect.engagement import EngagementIndex
from gateway.collect.fanout import Aggregator
from gateway.collect.resilience import BreakerState, ResiliencePolicy, ResilientAdapter
from gateway.sources import Source, SourceStatus
from store.db import Database

pytestmark = pytest.mark.anyio

DEADLINE = 0.5


class SlowAdapter:
    """A source that takes ``delay`` seconds to say it has no record of anyone."""

    source_id = "slow"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0

    async def find_patient(self, person: PersonIdentifier) -> FhirResource | None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        return None

    async def search(self, resource_type: str, patient_id: str) -> list[FhirResource]:
        return []

    async def aclose(self) -> None:
        return None


def collector(
    db: Database, adapter: SlowAdapter, slots: int, deadline: float = DEADLINE
) -> Collector:
    config = SourceConfig(id="slow", kind="fhir-r4", base_url="http://slow.test", timeout=5)
    return Collector(
        Aggregator([Source(config, adapter)], deadline=deadline),
        RecordCache(db, "test-data-key-0123456789", timedelta(hours=1)),
        EngagementIndex(db, timedelta(hours=1)),
        fresh_for=timedelta(minutes=1),
        full_every=timedelta(hours=1),
        max_refreshes=slots,
    )


def person(number: str) -> PersonIdentifier:
    found = parse_person_identifier(number)
    assert found is not None
    return found


async def test_requests_beyond_the_slots_wait_their_turn(db: Database) -> None:
    adapter = SlowAdapter(delay=0.1)
    gateway = collector(db, adapter, slots=1, deadline=5.0)  # up to 1 s of waiting
    people = ["191212121212", "198107281563", "201605121936"]

    results = await asyncio.gather(
        *(gateway.collect(person(p), f"id-{n}", ["Observation"]) for n, p in enumerate(people))
    )

    assert adapter.most_in_flight == 1
    for result in results:
        (report,) = result.reports
        assert report.status is SourceStatus.NO_DATA


async def test_a_request_waits_for_a_turn_at_most_a_share_of_its_deadline(db: Database) -> None:
    """A hanging source holds its slot; the next request goes ahead without one."""
    adapter = SlowAdapter(delay=5.0)
    gateway = collector(db, adapter, slots=1)

    started = time.monotonic()
    outcomes = await asyncio.gather(
        gateway.collect(person("191212121212"), "id-1", ["Observation"]),
        gateway.collect(person("198107281563"), "id-2", ["Observation"]),
    )
    elapsed = time.monotonic() - started

    assert [o.reports[0].status for o in outcomes] == [SourceStatus.TIMEOUT] * 2
    assert adapter.most_in_flight == 2  # the second did not wait for the first to end
    assert elapsed < DEADLINE + 0.5


async def test_a_source_cut_short_by_the_requests_wait_is_not_blamed() -> None:
    """A timeout counts against a source's circuit only if it had its usual time."""
    adapter = ResilientAdapter(
        SlowAdapter(delay=5.0), ResiliencePolicy(attempts=1, failure_threshold=1)
    )
    config = SourceConfig(id="slow", kind="fhir-r4", base_url="http://slow.test", timeout=0.3)
    aggregator = Aggregator([Source(config, adapter)], deadline=DEADLINE)
    someone = person("191212121212")

    cut_short = await aggregator.gather(someone, ["Observation"], deadline=0.1)
    assert cut_short.reports[0].status is SourceStatus.TIMEOUT
    assert adapter.breaker.state is BreakerState.CLOSED

    full = await aggregator.gather(someone, ["Observation"])
    assert full.reports[0].status is SourceStatus.TIMEOUT
    assert adapter.breaker.state is BreakerState.OPEN
