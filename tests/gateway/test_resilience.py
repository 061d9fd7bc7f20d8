"""ResilientAdapter against fake adapters, a fake clock and a counting mock transport."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from adapters.base import FhirResource, SourceAdapter
from adapters.config import SourceConfig
from adapters.errors import (
    SourceAuthError,
    SourceError,
    SourceProtocolError,
    SourceTimeout,
    SourceUnavailable,
)
from adapters.fhir_r4 import FhirR4Adapter
from fhir_profiles.identifiers import PersonIdentifier, parse_person_identifier
from gateway.collect.fanout import Aggregator
from gateway.collect.resilience import (
    BreakerState,
    CallBudget,
    CircuitOpen,
    MonotonicClock,
    ResiliencePolicy,
    ResilientAdapter,
    call_budget,
    failure_reason,
)
from gateway.sources import Source, SourceStatus

pytestmark = pytest.mark.anyio

PERSON = parse_person_identifier("191212121212")
PATIENT: FhirResource = {"resourceType": "Patient", "id": "p1"}


@dataclass
class FakeClock:
    """Time that moves only when someone sleeps (or a test says so)."""

    t: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


@dataclass
class ScriptedAdapter:
    """Answers each call with the next scripted outcome: an exception to raise or a value."""

    script: list[SourceError | FhirResource | None]
    source_id: str = "fake"
    calls: int = 0

    async def find_patient(self, person: PersonIdentifier) -> FhirResource | None:
        self.calls += 1
        outcome = self.script.pop(0) if self.script else PATIENT
        if isinstance(outcome, SourceError):
            raise outcome
        return outcome

    async def search(self, resource_type: str, patient_id: str) -> list[FhirResource]:
        found = await self.find_patient(PERSON)
        return [found] if found else []

    async def aclose(self) -> None:
        pass


def wrap(
    inner: SourceAdapter,
    clock: FakeClock,
    rng: Callable[[], float] = lambda: 0.5,
    **policy: float,
) -> ResilientAdapter:
    return ResilientAdapter(inner, ResiliencePolicy(**policy), clock=clock, rng=rng)  # type: ignore[arg-type]


def down(retry_after: float | None = None) -> SourceUnavailable:
    return SourceUnavailable("fake: HTTP 503", retry_after=retry_after)


# -- retries --------------------------------------------------------------------------


async def test_transient_failure_is_retried_and_tries_are_counted() -> None:
    clock = FakeClock()
    inner = ScriptedAdapter([down(), down(), PATIENT])
    adapter = wrap(inner, clock, attempts=3)
    with call_budget(CallBudget()) as budget:
        assert await adapter.find_patient(PERSON) == PATIENT
    assert inner.calls == 3
    assert budget.attempts == 3
    assert len(clock.sleeps) == 2


async def test_no_data_is_an_answer_not_a_failure() -> None:
    inner = ScriptedAdapter([None])
    adapter = wrap(inner, FakeClock())
    assert await adapter.find_patient(PERSON) is None
    assert inner.calls == 1
    assert adapter.breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize("rng_value", [0.0, 0.25, 0.999999])
async def test_backoff_is_full_jitter_under_an_exponential_cap(rng_value: float) -> None:
    clock = FakeClock()
    inner = ScriptedAdapter([down()] * 4)
    adapter = wrap(
        inner,
        clock,
        rng=lambda: rng_value,
        attempts=5,
        backoff_base=0.1,
        backoff_cap=0.3,
        failure_threshold=100,
    )
    assert await adapter.find_patient(PERSON) == PATIENT
    limits = [0.1, 0.2, 0.3, 0.3]  # base * 2**n, capped
    assert clock.sleeps == pytest.approx([rng_value * limit for limit in limits])
    assert all(0 <= s <= limit for s, limit in zip(clock.sleeps, limits, strict=True))


async def test_last_error_is_raised_when_tries_run_out() -> None:
    clock = FakeClock()
    inner = ScriptedAdapter([down(), down(), down(), PATIENT])
    adapter = wrap(inner, clock, attempts=3)
    with pytest.raises(SourceUnavailable), call_budget(CallBudget()) as budget:
        await adapter.find_patient(PERSON)
    assert inner.calls == 3
    assert budget.attempts == 3


async def test_retry_after_is_honoured() -> None:
    clock = FakeClock()
    inner = ScriptedAdapter([down(retry_after=1.0), PATIENT])
    adapter = wrap(inner, clock, rng=lambda: 0.0)
    with call_budget(CallBudget(deadline=clock.t + 5)):
        assert await adapter.find_patient(PERSON) == PATIENT
    assert clock.sleeps == [1.0]


async def test_never_sleeps_past_the_deadline() -> None:
    clock = FakeClock()
    inner = ScriptedAdapter([down(retry_after=1.0), PATIENT])
    adapter = wrap(inner, clock)
    budget = CallBudget(deadline=clock.t + 0.5)
    with call_budget(budget), pytest.raises(SourceUnavailable) as raised:
        await adapter.find_patient(PERSON)
    assert clock.sleeps == []
    assert inner.calls == 1
    assert budget.attempts == 1
    assert failure_reason(raised.value) == "rate-limited"


async def test_jittered_backoff_also_stops_at_the_deadline() -> None:
    clock = FakeClock()
    inner = ScriptedAdapter([down(), down(), PATIENT])
    adapter = wrap(inner, clock, rng=lambda: 0.999, backoff_base=0.2, backoff_cap=1.0)
    # First wait is ~0.2 s and fits; the second (~0.4 s) would end after the deadline.
    with call_budget(CallBudget(deadline=clock.t + 0.5)), pytest.raises(SourceUnavailable):
        await adapter.find_patient(PERSON)
    assert inner.calls == 2
    assert sum(clock.sleeps) < 0.5


@pytest.mark.parametrize(
    "error", [SourceAuthError("fake: HTTP 401"), SourceProtocolError("fake: not a Bundle")]
)
async def test_fatal_failures_are_not_retried(error: SourceError) -> None:
    clock = FakeClock()
    inner = ScriptedAdapter([error, PATIENT])
    adapter = wrap(inner, clock, failure_threshold=1)
    with pytest.raises(type(error)):
        await adapter.find_patient(PERSON)
    assert inner.calls == 1
    assert clock.sleeps == []
    # They say nothing about the source's health either.
    assert adapter.breaker.state is BreakerState.CLOSED


def test_failure_reasons() -> None:
    assert failure_reason(SourceUnavailable("x")) == "unavailable"
    assert failure_reason(SourceUnavailable("x", retry_after=2.0)) == "rate-limited"
    assert failure_reason(SourceTimeout("x")) == "timeout"
    assert failure_reason(CircuitOpen("x")) == "circuit-open"
    assert failure_reason(SourceAuthError("x")) == "auth"
    assert failure_reason(SourceProtocolError("x")) == "protocol"


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        ResiliencePolicy(attempts=0)
    with pytest.raises(ValueError, match="negative"):
        ResiliencePolicy(cool_down=-1)


# -- circuit breaker ------------------------------------------------------------------


async def test_breaker_opens_fails_fast_then_a_probe_closes_it() -> None:
    clock = FakeClock()
    inner = ScriptedAdapter([down(), down(), down()])
    adapter = wrap(inner, clock, attempts=1, failure_threshold=3, cool_down=10.0)
    for _ in range(3):
        with pytest.raises(SourceUnavailable):
            await adapter.find_patient(PERSON)
    assert adapter.breaker.state is BreakerState.OPEN

    with call_budget(CallBudget()) as budget, pytest.raises(CircuitOpen) as raised:
        await adapter.find_patient(PERSON)
    assert inner.calls == 3  # not sent
    assert budget.attempts == 0
    assert failure_reason(raised.value) == "circuit-open"

    clock.t += 9.9
    with pytest.raises(CircuitOpen):
        await adapter.find_patient(PERSON)
    clock.t += 0.1
    assert adapter.breaker.state is BreakerState.HALF_OPEN
    assert await adapter.find_patient(PERSON) == PATIENT  # the probe
    assert adapter.breaker.state is BreakerState.CLOSED
    assert inner.calls == 4


async def test_failed_probe_opens_the_circuit_again() -> None:
    clock = FakeClock()
    inner = ScriptedAdapter([down(), down(), down()])
    adapter = wrap(inner, clock, attempts=1, failure_threshold=2, cool_down=5.0)
    for _ in range(2):
        with pytest.raises(SourceUnavailable):
            await adapter.find_patient(PERSON)
    clock.t += 5.0
    with pytest.raises(SourceUnavailable):
        await adapter.find_patient(PERSON)  # the probe fails
    assert adapter.breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        await adapter.find_patient(PERSON)
    assert inner.calls == 3


async def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    release = asyncio.Event()

    @dataclass
    class Slow:
        source_id: str = "slow"
        calls: int = 0

        async def find_patient(self, person: PersonIdentifier) -> FhirResource | None:
            self.calls += 1
            await release.wait()
            return PATIENT

        async def search(self, resource_type: str, patient_id: str) -> list[FhirResource]:
            return []

        async def aclose(self) -> None:
            pass

    inner = Slow()
    adapter = wrap(inner, clock, attempts=1, failure_threshold=1, cool_down=1.0)
    adapter.breaker.failed()
    clock.t += 1.0
    probe = asyncio.create_task(adapter.find_patient(PERSON))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpen):
        await adapter.find_patient(PERSON)
    release.set()
    assert await probe == PATIENT
    assert inner.calls == 1
    assert adapter.breaker.state is BreakerState.CLOSED


async def test_cancelled_probe_gives_its_slot_back() -> None:
    clock = FakeClock()
    never = asyncio.Event()

    @dataclass
    class Hangs:
        source_id: str = "hangs"

        async def find_patient(self, person: PersonIdentifier) -> FhirResource | None:
            await never.wait()
            return None

        async def search(self, resource_type: str, patient_id: str) -> list[FhirResource]:
            return []

        async def aclose(self) -> None:
            pass

    adapter = wrap(Hangs(), clock, attempts=1, failure_threshold=1, cool_down=1.0)
    adapter.breaker.failed()
    clock.t += 1.0
    probe = asyncio.create_task(adapter.find_patient(PERSON))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert adapter.breaker.admit()  # a new probe may go


async def test_failures_spread_beyond_the_window_do_not_open_it() -> None:
    clock = FakeClock()
    inner = ScriptedAdapter([down()] * 6)
    adapter = wrap(inner, clock, attempts=1, failure_threshold=3, failure_window=10.0)
    for _ in range(6):
        with pytest.raises(SourceUnavailable):
            await adapter.find_patient(PERSON)
        clock.t += 6.0  # two failures per window at most
    assert adapter.breaker.state is BreakerState.CLOSED


async def test_a_success_resets_the_failure_count() -> None:
    clock = FakeClock()
    inner = ScriptedAdapter([down(), down(), PATIENT, down(), down()])
    adapter = wrap(inner, clock, attempts=1, failure_threshold=3)
    for _ in range(5):
        with contextlib.suppress(SourceUnavailable):
            await adapter.find_patient(PERSON)
    assert adapter.breaker.state is BreakerState.CLOSED


async def test_retries_stop_when_the_breaker_opens_and_report_the_real_error() -> None:
    clock = FakeClock()
    inner = ScriptedAdapter([down()] * 5)
    adapter = wrap(inner, clock, attempts=5, failure_threshold=2)
    with pytest.raises(SourceUnavailable) as raised:
        await adapter.find_patient(PERSON)
    assert not isinstance(raised.value, CircuitOpen)
    assert inner.calls == 2


# -- the breaker seen on the wire -----------------------------------------------------


async def test_open_circuit_sends_no_requests_until_the_probe() -> None:
    """A real FhirR4Adapter over a counting MockTransport: the breaker keeps it quiet."""
    sent: list[httpx.Request] = []
    healthy = False

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if not healthy:
            return httpx.Response(503)
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": []}
        return httpx.Response(200, json=bundle)

    config = SourceConfig(id="counted", kind="fhir-r4", base_url="http://counted.test/fhir")
    clock = FakeClock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        adapter = wrap(
            FhirR4Adapter(config, client),
            clock,
            attempts=2,
            backoff_base=0.01,
            failure_threshold=4,
            cool_down=30.0,
        )
        for _ in range(2):  # two calls, two tries each: four failures
            with pytest.raises(SourceUnavailable):
                await adapter.find_patient(PERSON)
        assert len(sent) == 4
        assert adapter.breaker.state is BreakerState.OPEN
        for _ in range(10):
            with pytest.raises(CircuitOpen):
                await adapter.search("Observation", "p1")
        assert len(sent) == 4

        healthy = True
        clock.t += 30.0
        assert await adapter.find_patient(PERSON) is None  # the probe: answered, no match
        assert adapter.breaker.state is BreakerState.CLOSED
        assert await adapter.search("Observation", "p1") == []
        assert len(sent) == 6


async def test_a_retried_paged_search_starts_its_sink_over() -> None:
    """Page 2 fails once: the retry hands on every page again, after a restart, so the
    sink never holds page 1 twice."""
    failures = [httpx.Response(503)]

    def handler(request: httpx.Request) -> httpx.Response:
        second = request.url.params.get("page") == "2"
        if second and failures:
            return failures.pop()
        entry = [{"resource": {"resourceType": "Observation", "id": "o2" if second else "o1"}}]
        link = (
            []
            if second
            else [{"relation": "next", "url": "http://paged.test/fhir/Observation?page=2"}]
        )
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entry, "link": link}
        return httpx.Response(200, json=bundle)

    events: list[object] = []

    class Sink:
        def restart(self) -> None:
            events.append("restart")

        def take(self, page: list[FhirResource]) -> None:
            events.append([r["id"] for r in page])

        def expect(self, total: int) -> None:
            events.append(f"expect {total}")

    config = SourceConfig(id="paged", kind="fhir-r4", base_url="http://paged.test/fhir")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        adapter = wrap(FhirR4Adapter(config, client), FakeClock(), attempts=2)
        assert adapter.paged
        with call_budget(CallBudget()) as budget:
            await adapter.search_into("Observation", "p1", Sink())
    assert events == ["restart", ["o1"], "restart", ["o1"], ["o2"]]
    assert budget.attempts == 2


# -- concurrency cap ------------------------------------------------------------------


@dataclass
class Gate:
    """An adapter whose calls wait for a gate, counting how many are in flight."""

    source_id: str = "gated"
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    most: int = 0
    calls: int = 0

    async def find_patient(self, person: PersonIdentifier) -> FhirResource | None:
        self.calls += 1
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.opened.wait()
        finally:
            self.in_flight -= 1
        return PATIENT

    async def search(self, resource_type: str, patient_id: str) -> list[FhirResource]:
        return [await self.find_patient(PERSON)]  # type: ignore[list-item]

    async def aclose(self) -> None:
        pass


async def test_calls_in_flight_are_capped_per_source() -> None:
    inner = Gate()
    adapter = ResilientAdapter(inner, ResiliencePolicy(max_concurrency=2))
    calls = [asyncio.create_task(adapter.search("Observation", "p1")) for _ in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert inner.in_flight == 2
    inner.opened.set()
    await asyncio.gather(*calls)
    assert inner.most == 2
    assert inner.calls == 5


async def test_waiting_for_a_slot_counts_against_the_deadline() -> None:
    inner = Gate()
    clock = MonotonicClock()
    adapter = ResilientAdapter(
        inner, ResiliencePolicy(max_concurrency=1, failure_threshold=1), clock=clock
    )
    holder = asyncio.create_task(adapter.find_patient(PERSON))
    await asyncio.sleep(0)
    with call_budget(CallBudget(deadline=clock.now() + 0.05)), pytest.raises(SourceTimeout):
        await adapter.find_patient(PERSON)
    assert inner.calls == 1  # the queued call was never sent ...
    assert adapter.breaker.state is BreakerState.CLOSED  # ... so it is not held against it
    inner.opened.set()
    assert await holder == PATIENT


async def test_a_hung_call_times_out_at_the_deadline_and_counts_as_a_failure() -> None:
    inner = Gate()
    clock = MonotonicClock()
    adapter = ResilientAdapter(inner, ResiliencePolicy(failure_threshold=1), clock=clock)
    budget = CallBudget(deadline=clock.now() + 0.05)
    with call_budget(budget), pytest.raises(SourceTimeout):
        await adapter.find_patient(PERSON)
    assert budget.attempts == 1
    assert adapter.breaker.state is BreakerState.OPEN


# -- the aggregator reports it --------------------------------------------------------


async def test_aggregator_reports_reason_and_attempts() -> None:
    clock = FakeClock()
    flaky = wrap(ScriptedAdapter([down(), PATIENT], source_id="flaky"), clock)
    broken = wrap(ScriptedAdapter([down()] * 3, source_id="broken"), clock, attempts=3)
    tripped = wrap(ScriptedAdapter([], source_id="tripped"), clock, failure_threshold=1)
    tripped.breaker.failed()
    sources = [
        Source(SourceConfig(id=a.source_id, kind="fhir-r4", base_url="http://x.test"), a)
        for a in (flaky, broken, tripped)
    ]
    # The aggregator's deadlines are on the wrappers' clock, whatever the real one says.
    aggregator = Aggregator(sources, deadline=5.0, clock=clock)
    gathered = await aggregator.gather(PERSON, ["Observation"])
    reports = {r.source_id: r for r in gathered.reports}
    assert (reports["flaky"].status, reports["flaky"].attempts) == (SourceStatus.OK, 2)
    assert reports["flaky"].reason is None
    assert (reports["broken"].reason, reports["broken"].attempts) == ("unavailable", 3)
    assert reports["tripped"].status is SourceStatus.FAILED
    assert (reports["tripped"].reason, reports["tripped"].attempts) == ("circuit-open", 0)


async def test_a_failed_search_cancels_its_siblings() -> None:
    """No search outlives its source's failure (it would hold a concurrency slot)."""
    cancelled: list[str] = []

    @dataclass
    class OneBad:
        source_id: str = "one-bad"

        async def find_patient(self, person: PersonIdentifier) -> FhirResource | None:
            return PATIENT

        async def search(self, resource_type: str, patient_id: str) -> list[FhirResource]:
            if resource_type == "Condition":
                raise SourceProtocolError("one-bad: Condition search: not a Bundle")
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(resource_type)
                raise
            return []

        async def aclose(self) -> None:
            pass

    config = SourceConfig(id="one-bad", kind="fhir-r4", base_url="http://x.test")
    aggregator = Aggregator([Source(config, OneBad())], deadline=5.0)
    gathered = await aggregator.gather(PERSON, ["Observation", "Condition", "Encounter"])
    (report,) = gathered.reports
    assert report.reason == "protocol"
    assert sorted(cancelled) == ["Encounter", "Observation"]
