"""Turns at asking sources: a worker asks sources for a few requests at once, the oldest
first; a turn held too long passes on; a request with no turn in time answers without
asking; while others wait, sources are given less (gateway/collect/turns.py and the
collector)."""

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
from gateway.collect.deadline import BUSY_SHARE, arrived
from gateway.collect.engagement import EngagementIndex
from gateway.collect.fanout import Aggregator
from gateway.collect.resilience import (
    BreakerState,
    ResiliencePolicy,
    ResilientAdapter,
    current_budget,
)
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
        self.calls = 0
        #: The seconds each call was given (its budget's deadline, less now).
        self.given: list[float] = []

    async def find_patient(self, person: PersonIdentifier) -> FhirResource | None:
        self.calls += 1
        budget = current_budget()
        if budget is not None:
            self.given.append(budget.deadline - time.monotonic())
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
    gateway = collector(db, adapter, slots=1, deadline=30.0)  # a turn held up to 3 s
    people = ["191212121212", "198107281563", "201605121936"]

    results = await asyncio.gather(
        *(gateway.collect(person(p), f"id-{n}", ["Observation"]) for n, p in enumerate(people))
    )

    assert adapter.most_in_flight == 1
    for result in results:
        (report,) = result.reports
        assert report.status is SourceStatus.NO_DATA


async def test_a_turn_passes_on_while_a_hanging_source_is_waited_for(db: Database) -> None:
    """A hanging source holds its request's turn only a tenth of the deadline."""
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


async def test_without_a_turn_in_time_the_sources_are_not_asked(db: Database) -> None:
    """Each turn passes on after a tenth of the deadline; a request still waiting when its
    sources could have only a tenth left answers at once, saying they were not asked."""
    adapter = SlowAdapter(delay=5.0)
    gateway = collector(db, adapter, slots=1)
    people = [f"id-{n}" for n in range(12)]

    started = time.monotonic()
    with arrived(started):  # requests someone waits on
        outcomes = await asyncio.gather(
            *(gateway.collect(person("191212121212"), p, ["Observation"]) for p in people)
        )
    elapsed = time.monotonic() - started

    assert [o.reports[0].status for o in outcomes] == [SourceStatus.TIMEOUT] * len(people)
    # Eight turns at most fit before the patience runs out (the twelfth would come after
    # 11 tenths of the deadline): the rest were never asked.
    assert 1 <= adapter.calls < len(people)
    assert gateway.turns.refused == len(people) - adapter.calls
    assert elapsed < DEADLINE + 0.5


async def test_while_others_wait_for_a_turn_the_sources_are_given_less(db: Database) -> None:
    adapter = SlowAdapter(delay=30.0)
    gateway = collector(db, adapter, slots=1, deadline=2.0)  # turns pass on after 0.2 s

    await asyncio.gather(
        *(gateway.collect(person("191212121212"), f"id-{n}", ["Observation"]) for n in range(3))
    )

    first, second, third = adapter.given
    # The first and the last asked while nobody else waited: all that was left, less what
    # is kept back for finishing. The second, with the third waiting behind it, less.
    assert first > 2.0 * BUSY_SHARE
    assert second <= 2.0 * BUSY_SHARE
    assert third > second


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


async def test_a_read_nobody_waits_on_waits_for_its_turn(db: Database) -> None:
    """Outside an HTTP request (a Bulk export's read), a read waits for its turn however
    long, and then gives its sources their whole time."""
    adapter = SlowAdapter(delay=0.0)
    gateway = collector(db, adapter, slots=1)
    gateway.turns.hold = None  # the one turn is held until its block ends
    async with gateway.turns.turn(0.0) as held:
        assert held is not None
        reading = asyncio.create_task(
            gateway.collect(person("191212121212"), "id-1", ["Observation"])
        )
        await asyncio.sleep(DEADLINE * 2)
        assert not reading.done(), "it waits, however long"
    outcome = await reading

    assert outcome.reports[0].status is SourceStatus.NO_DATA
    assert adapter.given[0] > DEADLINE * 0.5
