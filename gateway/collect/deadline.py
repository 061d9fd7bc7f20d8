"""The request deadline, counted from when the request arrived, with room left to answer.

``request_deadline`` bounds a whole answer, not only the sources' part of it: time spent
before the sources are asked (authentication, consent, waiting for a turn at asking them:
:mod:`gateway.collect.turns`) and after they answered (merging, logging, rendering) counts
too. So the sources get what is left of the deadline at the moment they are asked, less
the time this process has lately needed from the end of a fan-out to the start of its
answer (:class:`FinishTimes`); what is kept back is at least a tenth of the deadline and
at most two fifths. When the gateway is busy that time grows, the sources get less, and
the answer still starts within the deadline; a source cut short that way is reported
``timeout`` but is not blamed for it (its circuit breaker does not count it: see
:class:`gateway.collect.resilience.CallBudget`). While other requests wait for a turn,
the sources get at most :data:`BUSY_SHARE` of the deadline; a request that has no turn
while they could still have :data:`LEAST_SHARE` of it does not ask them at all.

:class:`RequestClock` middleware stamps each HTTP request on arrival, in a context
variable the collector reads, and reports each answer's finishing time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The share of the deadline kept back for finishing however fast that lately was: a
#: burst of requests arrives before any of them has shown how long finishing takes.
MIN_FINISH_SHARE = 0.1
#: The longest share of the deadline kept back for finishing, however slow that lately
#: was: the sources always get most of it.
MAX_FINISH_SHARE = 0.4
#: Kept back on top of the estimate, for the estimate's own error (seconds).
FINISH_MARGIN = 0.05
#: How fast the estimate follows a sample above it, and below it: up at once when the
#: gateway gets busy, down slowly when it calms.
RISE, FALL = 0.5, 0.05

#: The longest share of its deadline a request holds its turn at asking sources before
#: the turn's slot passes on (see :mod:`gateway.collect.turns`).
HOLD_SHARE = 0.1
#: The least share of its deadline a request's sources are given: a request that has no
#: turn at asking them while that much is still left answers without asking them.
LEAST_SHARE = 0.1
#: The longest share of its deadline a request's sources are given while other requests
#: wait for a turn (the worker is busy): a source slower than that is reported
#: ``timeout`` (not held against it), and those waiting on a source that hangs give up on
#: it one after another rather than all together at the end of their deadlines.
BUSY_SHARE = 0.3


@dataclass(slots=True)
class Arrival:
    """One request's timing, shared between the middleware and the collector."""

    arrived: float
    #: When the request's fan-out ended (None: it asked no sources).
    fanned_out: float | None = None


_current: ContextVar[Arrival | None] = ContextVar("samlad_request_arrival", default=None)


def request_arrival() -> Arrival | None:
    """The timing of the HTTP request being served (None outside one: a read nobody
    waits on, such as a Bulk export's)."""
    return _current.get()


@contextmanager
def arrived(at: float | None = None) -> Iterator[Arrival]:
    """Serve what runs inside as one request that arrived ``at`` (``time.monotonic()``;
    now by default), as :class:`RequestClock` does each HTTP request."""
    arrival = Arrival(time.monotonic() if at is None else at)
    token = _current.set(arrival)
    try:
        yield arrival
    finally:
        _current.reset(token)


class FinishTimes:
    """How long this process lately took from the end of a fan-out to the start of its
    answer: an estimate that rises quickly and falls slowly."""

    def __init__(self) -> None:
        self.estimate = 0.0

    def add(self, seconds: float) -> None:
        step = RISE if seconds > self.estimate else FALL
        self.estimate += (seconds - self.estimate) * step

    def reserve(self, deadline: float) -> float:
        """Seconds of ``deadline`` to keep back for finishing now."""
        return _reserve(self.estimate, deadline)

    def turn_patience(self, deadline: float, elapsed: float) -> float:
        """How much longer a request ``elapsed`` seconds old may wait for its turn at
        asking sources: while they could still be given :data:`LEAST_SHARE` of it."""
        return deadline * (1 - LEAST_SHARE) - self.reserve(deadline) - elapsed

    def sources_share(self, deadline: float, elapsed: float, busy: bool) -> float:
        """The seconds a request ``elapsed`` seconds old gives its sources: what is left
        of ``deadline`` less what is kept back for finishing; at most :data:`BUSY_SHARE`
        of it while the worker is ``busy`` (others wait for a turn)."""
        share = deadline - self.reserve(deadline) - elapsed
        return min(share, deadline * BUSY_SHARE) if busy else share

    @staticmethod
    def unhurried(deadline: float) -> float:
        """The sources' share of ``deadline`` when finishing is quick: a source given
        less (because the worker is busy) is not blamed for running out of time."""
        return deadline - _reserve(0.0, deadline)


def _reserve(estimate: float, deadline: float) -> float:
    wanted = max(estimate + FINISH_MARGIN, deadline * MIN_FINISH_SHARE)
    return min(wanted, deadline * MAX_FINISH_SHARE)


class RequestClock:
    """ASGI middleware: stamps each HTTP request's arrival (see :func:`request_arrival`) and,
    when its answer starts, adds the time since its fan-out ended to ``finish_times``
    (a callable, so the app's services can be made after the middleware)."""

    def __init__(self, app: ASGIApp, finish_times: Callable[[], FinishTimes | None]) -> None:
        self.app = app
        self._finish_times = finish_times

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with arrived() as arrival:

            async def send_timed(message: Message) -> None:
                if message["type"] == "http.response.start" and arrival.fanned_out is not None:
                    times = self._finish_times()
                    if times is not None:
                        times.add(time.monotonic() - arrival.fanned_out)
                await send(message)

            await self.app(scope, receive, send_timed)
