"""Per-source resilience: retries with backoff, a circuit breaker and a concurrency cap.

:class:`ResilientAdapter` wraps any :class:`~adapters.base.SourceAdapter`, so every
dialect gets the same behaviour without knowing about it:

* **Retries.** ``find_patient`` and ``search`` are idempotent reads, so a transient
  failure (:class:`~adapters.errors.SourceUnavailable`: connection failure, timeout, 429,
  5xx) is tried again, after an exponential backoff with full jitter, or after the
  source's ``Retry-After`` if it sent one. A :class:`~adapters.errors.SourceFailure`
  (auth, protocol) is never retried: the same request would fail the same way. No sleep
  ever runs past the caller's deadline; when the next try cannot fit, the last error is
  raised at once.
* **Circuit breaker**, one per source, shared by all requests::

      closed --N consecutive failures within window--> open
      open --cool-down elapsed--> half-open (one probe call let through)
      half-open --probe succeeds--> closed
      half-open --probe fails--> open (cool-down starts again)

  While open (and while a half-open probe is in flight), calls fail immediately with
  :class:`CircuitOpen`. Only transient failures count: a protocol error about one
  person's data says nothing about the source's health.
* **Concurrency cap**: at most ``max_concurrency`` calls in flight per source; waiting
  for a slot counts against the deadline, so one slow source cannot tie up the gateway.

The deadline and the per-request accounting travel in a context variable
(:func:`call_budget`): the aggregator opens one :class:`CallBudget` per source per
request, and every call the wrapper makes inside it (including the concurrent searches,
which inherit the context) reads the deadline from it and records its tries in it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from adapters.base import (
    FhirResource,
    PageSink,
    SourceAdapter,
    supports_pages,
    supports_reads,
    supports_since,
)
from adapters.errors import SourceError, SourceTimeout, SourceUnavailable, TypeNotOffered
from fhir_profiles.identifiers import PersonIdentifier

log = logging.getLogger(__name__)

T = TypeVar("T")


class CircuitOpen(SourceUnavailable):
    """The source's circuit breaker is open: the call was not sent."""

    reason = "circuit-open"


class RateLimited(SourceUnavailable):
    """The source asked us to come back later (429, or 503 with ``Retry-After``)."""

    reason = "rate-limited"


def failure_reason(exc: SourceError) -> str:
    """The machine-readable reason to report for ``exc``.

    A plain :class:`SourceUnavailable` that carries ``retry_after`` is the source saying
    when to come back (429, or 503 with ``Retry-After``): that is ``rate-limited``, which
    a client may treat differently from a source that is down.
    """
    if type(exc) is SourceUnavailable and exc.retry_after is not None:
        return RateLimited.reason
    return exc.reason


@dataclass(frozen=True, slots=True)
class ResiliencePolicy:
    """How hard to try one source. Times are in seconds."""

    #: Tries per call, the first included (1 disables retries).
    attempts: int = 3
    #: Backoff before try k+1 is uniform in [0, min(cap, base * 2**(k-1))] (full jitter).
    backoff_base: float = 0.05
    backoff_cap: float = 1.0
    #: Consecutive transient failures that open the circuit ...
    failure_threshold: int = 5
    #: ... when they all fall within this window.
    failure_window: float = 30.0
    #: How long the circuit stays open before one probe is let through.
    cool_down: float = 10.0
    #: Calls in flight to the source at once, across all requests.
    max_concurrency: int = 16

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.failure_threshold < 1 or self.max_concurrency < 1:
            raise ValueError("attempts, failure_threshold and max_concurrency must be >= 1")
        if min(self.backoff_base, self.backoff_cap, self.failure_window, self.cool_down) < 0:
            raise ValueError("times must not be negative")

    def backoff_limit(self, tries: int) -> float:
        """Upper bound of the jittered wait after ``tries`` failed tries."""
        # Cap the exponent: 2**1000 would overflow long before the cap applies.
        return min(self.backoff_cap, self.backoff_base * float(2 ** min(tries - 1, 62)))


class Clock(Protocol):
    """Monotonic time and sleeping, injectable so tests need not wait."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` (the event loop's clock) and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(slots=True)
class CallBudget:
    """One source's share of one request: its deadline, and what its calls did."""

    #: Absolute deadline on the wrapper's clock; ``math.inf`` for none.
    deadline: float = math.inf
    #: The most tries any one call needed (1 = no retries; 0 = nothing was sent).
    attempts: int = 0
    #: Whether running out of time is the source's fault: False when the request had
    #: less than the usual time left for it (it waited for its turn), so a timeout then
    #: does not count against the source's circuit.
    blames_source: bool = True

    def note_tries(self, tries: int) -> None:
        self.attempts = max(self.attempts, tries)


_budget: ContextVar[CallBudget | None] = ContextVar("samlad_call_budget", default=None)


@contextmanager
def call_budget(budget: CallBudget) -> Iterator[CallBudget]:
    """Make ``budget`` the current one for calls made in this context (and tasks it starts)."""
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def current_budget() -> CallBudget | None:
    """The budget opened by the nearest :func:`call_budget`, if any."""
    return _budget.get()


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """The breaker of one source (see the module docstring for the states)."""

    def __init__(self, policy: ResiliencePolicy, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._first_failure_at = 0.0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The state as a caller would meet it now (an open breaker past its cool-down
        reads as half-open)."""
        if self._state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    def _cooled_down(self) -> bool:
        return self._clock.now() - self._opened_at >= self._policy.cool_down

    def admit(self) -> bool:
        """Claim permission for one call; False means fail fast. True obliges the caller
        to report the outcome with :meth:`succeeded`, :meth:`failed` or :meth:`released`."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN and self._cooled_down():
            self._state = BreakerState.HALF_OPEN
        if self._state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def succeeded(self) -> None:
        """The source answered: close the circuit, forget earlier failures."""
        if self._state is not BreakerState.CLOSED:
            log.info("circuit closed again after a successful probe")
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_in_flight = False

    def failed(self) -> None:
        """The source failed transiently."""
        now = self._clock.now()
        if self._state is BreakerState.HALF_OPEN:
            self._open(now)
            return
        if self._state is BreakerState.OPEN:
            return  # a call admitted before the circuit opened, finishing late
        if self._failures == 0 or now - self._first_failure_at > self._policy.failure_window:
            self._failures = 0
            self._first_failure_at = now
        self._failures += 1
        if self._failures >= self._policy.failure_threshold:
            self._open(now)

    def released(self) -> None:
        """The admitted call ended without saying anything about the source's health
        (a failure about the data, or the caller gave up before the source answered)."""
        if self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._failures = 0
        self._probe_in_flight = False


class ResilientAdapter:
    """A :class:`~adapters.base.SourceAdapter` that adds retries, a breaker and a cap.

    ``rng`` returns a float in [0, 1) for the jitter; ``clock`` supplies time and sleep.
    """

    def __init__(
        self,
        inner: SourceAdapter,
        policy: ResiliencePolicy,
        *,
        clock: Clock | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.inner = inner
        self.source_id = inner.source_id
        self.incremental = supports_since(inner)
        self.paged = supports_pages(inner)
        self.readable = supports_reads(inner)
        self.policy = policy
        self._clock = clock or MonotonicClock()
        self._rng = rng
        self.breaker = CircuitBreaker(policy, self._clock)
        self._slots = asyncio.Semaphore(policy.max_concurrency)
        self._in_flight = 0

    @property
    def slots_in_use(self) -> int:
        """Calls to the source holding one of its ``max_concurrency`` slots now."""
        return self._in_flight

    def __repr__(self) -> str:
        return f"ResilientAdapter({self.inner!r})"

    async def find_patient(self, person: PersonIdentifier) -> FhirResource | None:
        """The inner adapter's ``find_patient``, with retries, breaker and cap."""
        return await self._call(lambda: self.inner.find_patient(person), "Patient")

    async def search(self, resource_type: str, patient_id: str) -> list[FhirResource]:
        """The inner adapter's ``search``, with retries, breaker and cap.

        A retry repeats the whole search, from its first page: the adapter's paging is
        not resumable, and reads are idempotent.
        """
        return await self._call(lambda: self.inner.search(resource_type, patient_id), resource_type)

    async def search_since(
        self, resource_type: str, patient_id: str, since: datetime
    ) -> list[FhirResource]:
        """The inner adapter's ``search_since`` (only when ``incremental``), like ``search``."""
        inner = self.inner
        if not supports_since(inner):
            raise TypeError(f"{self.source_id}: the adapter cannot search by last update")
        return await self._call(
            lambda: inner.search_since(resource_type, patient_id, since), resource_type
        )

    async def search_into(self, resource_type: str, patient_id: str, sink: PageSink) -> None:
        """The inner adapter's ``search_into`` (only when ``paged``), like ``search``: a
        retry starts the sink over from the first page."""
        inner = self.inner
        if not supports_pages(inner):
            raise TypeError(f"{self.source_id}: the adapter cannot hand on pages")
        await self._call(lambda: inner.search_into(resource_type, patient_id, sink), resource_type)

    async def read_many(self, resource_type: str, ids: Sequence[str]) -> list[FhirResource]:
        """The inner adapter's ``read_many`` (only when ``readable``), like ``search``."""
        inner = self.inner
        if not supports_reads(inner):
            raise TypeError(f"{self.source_id}: the adapter cannot read by id")
        return await self._call(lambda: inner.read_many(resource_type, ids), resource_type)

    async def aclose(self) -> None:
        """Close the inner adapter."""
        await self.inner.aclose()

    async def _call(self, attempt: Callable[[], Awaitable[T]], what: str) -> T:
        budget = current_budget() or CallBudget()
        tries = 0
        last: SourceUnavailable | None = None
        while True:
            if not self.breaker.admit():
                if last is not None:
                    # Our own retries opened it: the source's real error says more.
                    raise last
                raise CircuitOpen(f"{self.source_id}: {what}: circuit open")
            tries += 1
            budget.note_tries(tries)
            try:
                result = await self._try_once(attempt, budget, what)
            except _NotAsked:
                self.breaker.released()
                raise
            except TypeNotOffered:
                self.breaker.succeeded()  # it answered, and what it said is true
                raise
            except SourceUnavailable as exc:
                self.breaker.failed()
                delay = self._delay(tries, exc)
                if delay is None or self._clock.now() + delay >= budget.deadline:
                    raise
                last = exc
                log.info(
                    "source %s: %s: %s, try %d of %d in %.0f ms",
                    self.source_id,
                    what,
                    failure_reason(exc),
                    tries + 1,
                    self.policy.attempts,
                    delay * 1000,
                )
                await self._clock.sleep(delay)
                continue
            except BaseException:
                # A protocol or auth error, a bug, or cancellation: nothing learned about
                # the source's health, but a half-open probe slot must be given back.
                self.breaker.released()
                raise
            self.breaker.succeeded()
            return result

    def _delay(self, tries: int, exc: SourceUnavailable) -> float | None:
        """How long to wait before the next try, or None when there is none."""
        if tries >= self.policy.attempts:
            return None
        jittered = self._rng() * self.policy.backoff_limit(tries)
        if exc.retry_after is not None:
            # The source said when; waiting less would just be refused again.
            return max(exc.retry_after, jittered)
        return jittered

    async def _try_once(
        self, attempt: Callable[[], Awaitable[T]], budget: CallBudget, what: str
    ) -> T:
        remaining = budget.deadline - self._clock.now()
        if remaining <= 0:
            raise _NotAsked(f"{self.source_id}: {what}: deadline reached")
        timeout = None if math.isinf(remaining) else remaining
        in_flight = False
        try:
            async with asyncio.timeout(timeout):
                async with self._slots:
                    in_flight = True
                    self._in_flight += 1
                    try:
                        result = await attempt()
                    finally:
                        self._in_flight -= 1
        except TimeoutError as exc:
            if not in_flight:
                # Queued behind this source's other calls until the deadline: the source
                # was never asked, so this must not count against its health.
                raise _NotAsked(f"{self.source_id}: {what}: no free slot in time") from exc
            if not budget.blames_source:
                raise _CutShort(f"{self.source_id}: {what}: the request's time ran out") from exc
            raise SourceTimeout(f"{self.source_id}: {what}: deadline reached") from exc
        return result


class _NotAsked(SourceTimeout):
    """The deadline passed before the source was asked (reported as ``timeout``); it
    does not count against the source's circuit."""


class _CutShort(_NotAsked):
    """Asked, but given less than its usual time: its timeout is not counted either."""
