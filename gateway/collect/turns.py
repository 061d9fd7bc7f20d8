"""Turns: at most a few requests of a process at once do a piece of work, the oldest first.

A worker is one event loop. When a burst of requests all ask their sources at once, the
loop shares itself between all of them, so every one of them progresses slowly and all
of them answer late together. :class:`Turns` lets a few requests at a time in (``slots``)
and hands each slot that comes free to the request that has waited longest since it
*arrived* (its deadline is the nearest), not to whichever asked for a turn first: a
request back from a wait elsewhere is not put behind newer ones. So under a burst the
oldest requests finish in time, in turn. The collector's turns at asking sources and the
streamed answers' turns at reading the cache are such (see
:class:`gateway.collect.collector.Collector` and :class:`gateway.collect.streams.Streams`).

* A slot may be held at most ``hold`` seconds (None: for as long as the turn lasts); after
  that its request goes on without it and the slot passes to the next. A request waiting
  on a source that hangs costs the worker nothing while it does, so the worker is better
  used by someone else; it takes a slot again with :meth:`Turn.resume`, ahead of everyone
  who arrived after it.
* A request waits for a turn at most as long as it is told (its ``patience``), and not at
  all when the wait foreseen (the requests ahead of it, times how long slots have lately
  been held, over the slots) is longer: it is told at once, and answers early, saying what
  it could not do, rather than late.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

#: How fast the estimate of how long a slot is held follows each new hold.
HELD_WEIGHT = 0.2


class Turns:
    """Slots for a piece of work, handed out oldest arrival first."""

    def __init__(self, slots: int, hold: float | None) -> None:
        if slots < 1:
            raise ValueError("at least one slot")
        self.slots = slots
        #: The longest a turn's slot is held before it is passed on (seconds; None: no limit).
        self.hold = hold
        #: How long slots have lately been held (seconds): what a wait is foreseen by.
        self.held_for = 0.0
        #: Requests refused a turn since the start (their patience ran out, or would have).
        self.refused = 0
        self._free = slots
        #: Waiting requests by (arrival, order of asking): a future each, set when handed a slot.
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def in_use(self) -> int:
        """Slots held now."""
        return self.slots - self._free

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        return sum(1 for _, _, handed in self._waiting if not handed.done())

    def foreseen_wait(self, arrived: float) -> float:
        """How long a request that arrived at ``arrived`` would wait for a slot now."""
        if self._free > 0:
            return 0.0
        ahead = sum(1 for at, _, handed in self._waiting if at <= arrived and not handed.done())
        return (ahead + 1) * self.held_for / self.slots

    @asynccontextmanager
    async def turn(self, arrived: float, patience: float = math.inf) -> AsyncIterator[Turn | None]:
        """A turn for the request that arrived at ``arrived`` (``time.monotonic()``),
        waited for at most ``patience`` seconds: yields it (its slot held until the block
        ends or for ``hold`` seconds, whichever is sooner), or None without one."""
        if not await self._take(arrived, patience):
            self.refused += 1
            yield None
            return
        turn = Turn(self, arrived)
        try:
            yield turn
        finally:
            turn.pass_on()

    async def _take(self, arrived: float, patience: float) -> bool:
        if self._free > 0:  # then nobody is waiting: each slot freed went to a waiter
            self._free -= 1
            return True
        if patience <= 0 or self.foreseen_wait(arrived) > patience:
            return False
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (arrived, next(self._order), handed))
        try:
            async with asyncio.timeout(None if math.isinf(patience) else patience):
                await handed
        except TimeoutError:
            if handed.done() and not handed.cancelled():
                self._give_back()  # handed a slot just as the patience ran out
            return False
        except BaseException:
            if handed.done() and not handed.cancelled():
                self._give_back()
            raise
        return True

    def _give_back(self, held: float | None = None) -> None:
        """A slot came free (after being held ``held`` seconds): to the oldest request
        still waiting, else back to the pool."""
        if held is not None:
            self.held_for += (held - self.held_for) * HELD_WEIGHT
        while self._waiting:
            _, _, handed = heapq.heappop(self._waiting)
            if not handed.done():
                handed.set_result(None)
                return
        self._free += 1


class Turn:
    """One request's turn: its slot, until the turn ends or the slot is passed on."""

    def __init__(self, turns: Turns, arrived: float) -> None:
        self._turns = turns
        self._arrived = arrived
        #: When the slot held now was taken (None: no slot held).
        self._taken: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._hold()

    @property
    def held(self) -> bool:
        """Whether this request holds a slot now."""
        return self._taken is not None

    def pass_on(self) -> None:
        """Let the next request have the slot now; this one goes on without it (until
        :meth:`resume`). Done by itself after ``hold`` seconds."""
        if self._taken is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._taken = time.monotonic() - self._taken, None
        self._turns._give_back(held)

    async def resume(self) -> None:
        """Hold a slot again if it was passed on: for the request's own work after a long
        wait (storing and serving what its sources answered), which then goes before
        that of every request that arrived later."""
        if self._taken is None and await self._turns._take(self._arrived, math.inf):
            self._hold()

    def _hold(self) -> None:
        self._taken = time.monotonic()
        if self._turns.hold is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._turns.hold, self.pass_on)
