"""Turns at asking sources: handed out oldest arrival first, passed on after a while, never
lost (see gateway/collect/turns.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.collect.turns import Turn, Turns

pytestmark = pytest.mark.anyio

LONG = 60.0


async def until(condition: Callable[[], object]) -> None:
    """Let the event loop run until ``condition()`` holds (bounded)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_a_freed_slot_goes_to_the_request_that_arrived_first() -> None:
    turns = Turns(1, hold=None)
    order: list[float] = []
    release = asyncio.Event()

    async def request(arrived: float) -> None:
        async with turns.turn(arrived) as turn:
            assert turn is not None
            order.append(arrived)
            await release.wait()

    holder = asyncio.create_task(request(0.0))
    await until(lambda: order == [0.0])
    # They ask in another order than they arrived in.
    waiting = [asyncio.create_task(request(arrived)) for arrived in (3.0, 1.0, 2.0)]
    await until(lambda: turns.waiting == 3)
    release.set()
    await asyncio.gather(holder, *waiting)

    assert order == [0.0, 1.0, 2.0, 3.0]
    assert (turns.in_use, turns.waiting) == (0, 0)


async def test_each_request_has_a_slot_of_its_own_up_to_the_slots() -> None:
    turns = Turns(2, hold=None)
    inside = 0
    most = 0

    async def request(arrived: float) -> None:
        nonlocal inside, most
        async with turns.turn(arrived):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(request(float(n)) for n in range(6)))

    assert most == 2
    assert turns.in_use == 0


async def test_a_slot_held_too_long_passes_on_while_its_holder_goes_on() -> None:
    turns = Turns(1, hold=0.05)
    release = asyncio.Event()
    second_has_it = asyncio.Event()
    held: list[Turn] = []

    async def slow(arrived: float) -> None:
        async with turns.turn(arrived) as turn:
            assert turn is not None
            held.append(turn)
            if len(held) == 2:
                second_has_it.set()
            await release.wait()

    first = asyncio.create_task(slow(0.0))
    await until(lambda: len(held) == 1)
    second = asyncio.create_task(slow(1.0))
    # The first still holds on to its block: the second has its turn all the same.
    await asyncio.wait_for(second_has_it.wait(), LONG)

    assert not held[0].held
    assert held[1].held
    release.set()
    await asyncio.gather(first, second)
    assert (turns.in_use, turns.waiting) == (0, 0)


async def test_a_resumed_turn_goes_before_requests_that_arrived_later() -> None:
    turns = Turns(1, hold=None)
    order: list[str] = []
    sources_answered = asyncio.Event()
    release = asyncio.Event()

    async def old_request() -> None:
        async with turns.turn(0.0) as turn:
            assert turn is not None
            turn.pass_on()  # as after ``hold`` seconds of waiting for its sources
            await sources_answered.wait()
            await turn.resume()
            assert turn.held
            order.append("old request finishes")

    async def newer(name: str, arrived: float) -> None:
        async with turns.turn(arrived):
            order.append(name)
            await release.wait()

    old = asyncio.create_task(old_request())
    await until(lambda: turns.in_use == 0)
    holder = asyncio.create_task(newer("second takes the passed-on slot", 1.0))
    await until(lambda: order)
    later = asyncio.create_task(newer("third", 2.0))
    await until(lambda: turns.waiting == 1)
    sources_answered.set()
    await until(lambda: turns.waiting == 2)
    release.set()
    await asyncio.gather(old, holder, later)

    assert order == ["second takes the passed-on slot", "old request finishes", "third"]
    assert turns.in_use == 0


async def test_without_a_turn_in_time_a_request_is_told_so() -> None:
    turns = Turns(1, hold=None)
    release = asyncio.Event()

    async def holder() -> None:
        async with turns.turn(0.0):
            await release.wait()

    held = asyncio.create_task(holder())
    await until(lambda: turns.in_use == 1)
    async with turns.turn(1.0, patience=0.02) as turn:
        assert turn is None
    async with turns.turn(1.0, patience=0.0) as turn:
        assert turn is None
    release.set()
    await held

    assert (turns.in_use, turns.waiting, turns.refused) == (0, 0, 2)
    async with turns.turn(2.0, patience=0.0) as turn:
        assert turn is not None


async def test_a_wait_foreseen_longer_than_the_patience_is_refused_at_once() -> None:
    turns = Turns(2, hold=None)
    release = asyncio.Event()

    async def request(arrived: float) -> None:
        async with turns.turn(arrived):
            await release.wait()

    holders = [asyncio.create_task(request(float(n))) for n in range(3)]
    await until(lambda: (turns.in_use, turns.waiting) == (2, 1))
    turns.held_for = 10.0  # slots have lately been held 10 s each

    # One waits ahead (arrived at 2.0): two slots, so a turn is foreseen in 10 s.
    assert turns.foreseen_wait(3.0) == pytest.approx(10.0)
    # Arrived before it: it will not wait behind the one ahead.
    assert turns.foreseen_wait(1.5) == pytest.approx(5.0)
    async with turns.turn(3.0, patience=9.0) as turn:
        assert turn is None
        assert turns.waiting == 1  # told at once, without waiting in line

    async def patient(arrived: float) -> bool:
        async with turns.turn(arrived, patience=9.0) as turn:
            return turn is not None

    waits = asyncio.create_task(patient(1.5))
    await until(lambda: turns.waiting == 2)  # 5 s foreseen: it waits in line
    release.set()
    await asyncio.gather(*holders)
    assert await waits

    assert turns.refused == 1


async def test_a_request_cancelled_while_waiting_or_just_handed_a_slot_loses_none() -> None:
    turns = Turns(1, hold=None)
    release = asyncio.Event()
    waiters: list[asyncio.Task[None]] = []

    async def holder() -> None:
        async with turns.turn(0.0):
            await release.wait()
        # The slot was just handed to the waiter, which has not run since: cancel it now.
        waiters[-1].cancel()

    async def waiter(arrived: float) -> None:
        async with turns.turn(arrived):
            await asyncio.sleep(LONG)

    held = asyncio.create_task(holder())
    await until(lambda: turns.in_use == 1)
    cancelled_waiting = asyncio.create_task(waiter(1.0))
    waiters.append(asyncio.create_task(waiter(2.0)))
    await until(lambda: turns.waiting == 2)
    cancelled_waiting.cancel()
    await asyncio.gather(cancelled_waiting, return_exceptions=True)
    assert turns.waiting == 1

    release.set()
    outcomes = await asyncio.gather(held, waiters[-1], return_exceptions=True)

    assert outcomes[0] is None
    assert isinstance(outcomes[1], asyncio.CancelledError)
    assert (turns.in_use, turns.waiting) == (0, 0)
    async with turns.turn(3.0, patience=0.0) as turn:
        assert turn is not None


def test_a_turns_pool_has_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        Turns(0, hold=None)
