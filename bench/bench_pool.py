"""What a pooled PostgreSQL connection's liveness check costs: one checkout plus one
statement (``SELECT 1``) through :meth:`store.db.Database.connect`, with the connection
pinged on every checkout (``idle_ping_seconds=0``, what ``pool_pre_ping`` did) and pinged
only after an idle period (the default, ``IDLE_PING_SECONDS``), side by side.

The two run in turns, each first every other round, each in a fresh engine whose pool
is already filled; printed are the medians over the rounds of CPU per checkout (this
process's CPU time, which the machine's other work disturbs less) and of wall time, and
their ratio. A warm read takes several checkouts (the consent standing, the cache state,
the access log), so each saves this figure several times.

    python -m bench.bench_pool [--rounds 7] [--checkouts 2000] [--postgres URL]

Needs PostgreSQL (default: the tests' server on 127.0.0.1:5432, database ``test``; only
``SELECT 1`` is run, nothing is written).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from sqlalchemy import text

from bench.harness import POSTGRES_ADMIN_URL
from store.db import IDLE_PING_SECONDS, Database


async def _one_run(url: str, idle_ping_seconds: float, checkouts: int) -> tuple[float, float]:
    """CPU and wall microseconds per checkout plus statement."""
    db = Database(url, pool_size=4, idle_ping_seconds=idle_ping_seconds)
    try:
        async with db.connect() as conn:
            await conn.execute(text("SELECT 1"))
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(checkouts):
            async with db.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return (
            (time.process_time() - cpu) / checkouts * 1e6,
            (time.perf_counter() - wall) / checkouts * 1e6,
        )
    finally:
        await db.dispose()


async def main(url: str, rounds: int, checkouts: int) -> None:
    setups = {
        "ping on every checkout": 0.0,
        f"ping after {IDLE_PING_SECONDS:g} s idle": IDLE_PING_SECONDS,
    }
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in setups}
    for round_ in range(rounds):
        order = list(setups) if round_ % 2 == 0 else list(reversed(setups))
        for name in order:
            figures[name].append(await _one_run(url, setups[name], checkouts))
    print(f"{rounds} rounds of {checkouts} checkouts, each a SELECT 1; medians over the rounds")
    medians = {}
    for name, runs in figures.items():
        cpu = statistics.median(run[0] for run in runs)
        wall = statistics.median(run[1] for run in runs)
        medians[name] = (cpu, wall)
        print(f"  {name:<26} CPU {cpu:7.1f} µs   wall {wall:7.1f} µs per checkout")
    every, idle = medians.values()
    print(f"  idle/every: CPU {idle[0] / every[0]:.2f}, wall {idle[1] / every[1]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--checkouts", type=int, default=2000)
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL, help="database URL")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.postgres, arguments.rounds, arguments.checkouts))
