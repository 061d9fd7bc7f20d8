"""Access-log appends per second: group commit against one append per transaction.

Every data read awaits one append to the hash-chained access log, so its append rate is
the ceiling for logged reads. This times :meth:`consent.audit.AuditLog.append` (group
commit: concurrent appends share a transaction) and, side by side in the same run, the
path it replaced, one append per transaction under the lock
(``AuditLog._append_unbatched``), at several concurrencies, on PostgreSQL and on SQLite.
For each concurrency the two paths run in turns, each going first every other run, and
medians are printed; appends that fail (503) are counted, not timed.

Then the multi-process case: several processes, each with its own engine and log, append
concurrently to the one PostgreSQL database, as several gateway workers do; the figure
is all their appends over the wall time from a common start.

PostgreSQL gets a fresh database (``samlad_bench_…``, created from ``--postgres-url``,
dropped at the end), SQLite a file in a temporary folder, so nothing touches the tests'
databases. Each database's chain is verified at the end.

    python -m bench.bench_audit [--runs 5] [--appends 1000] [--concurrency 1 16 128]
                                [--processes 2] [--process-concurrency 64]
                                [--postgres-url URL] [--no-sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from consent.audit import AuditLog
from consent.entries import AuditEntryCreate, AuditEntryPublic
from store.db import Database, StoreUnavailable
from store.migrate import upgrade

MODES = ("unbatched", "batched")
LABELS = {"unbatched": "one per transaction", "batched": "group commit"}

Append = Callable[[AuditEntryCreate], Awaitable[AuditEntryPublic]]


def entries(count: int) -> list[AuditEntryCreate]:
    """Entries like the gateway's for a clinician's ``$everything`` (built before timing)."""
    return [
        AuditEntryCreate(
            actor_kind="clinician",
            actor_id="SE2321000016-DR01",
            actor_care_unit_hsa_id="SE2321000016-UNIT",
            actor_care_provider_hsa_id="SE2321000016-PROV",
            patient_id=f"pat{index % 97:029d}",
            action="everything",
            resource_types=["Condition", "MedicationRequest", "Observation", "Patient"],
            returned_count=1098,
            returned={
                "types": {"Condition": 120, "MedicationRequest": 178, "Observation": 800},
                "sources": ["region-nord", "region-syd", "region-vast"],
            },
            purpose="TREAT",
            outcome="allowed",
        )
        for index in range(count)
    ]


@dataclass
class Case:
    """One measured case: appends/s of each run, and the failed appends by cause."""

    rates: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


async def drive(append: Append, batch: list[AuditEntryCreate], concurrency: int) -> Case:
    """Append all of ``batch`` with ``concurrency`` callers at a time.

    The rate counts committed appends only; a failed one (StoreUnavailable, as the
    gateway would answer 503) is tallied by its cause.
    """
    pending = iter(batch)
    case = Case()
    committed = 0

    async def caller() -> None:
        nonlocal committed
        for item in pending:  # the callers share one iterator: each entry once
            try:
                await append(item)
            except StoreUnavailable as exc:
                case.failures[type(exc.__cause__).__name__] += 1
            else:
                committed += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    case.rates.append(committed / (time.perf_counter() - started))
    return case


def in_turn(run: int) -> tuple[str, ...]:
    """Both modes, the first of them alternating by run: whichever goes second inherits
    the database's after-effects (WAL, checkpoints) of the first."""
    return MODES if run % 2 == 0 else MODES[::-1]


def append_of(log: AuditLog, mode: str) -> Append:
    return log.append if mode == "batched" else log._append_unbatched


async def measure_in_process(
    url: str, runs: int, appends: int, concurrencies: list[int]
) -> dict[tuple[str, int], Case]:
    """Appends/s of ``runs`` runs of each (mode, concurrency)."""
    db = Database(url)
    log = AuditLog(db)
    cases = {(mode, c): Case() for c in concurrencies for mode in MODES}
    try:
        await drive(log.append, entries(50), 8)  # connect, warm the statement caches
        # One concurrency at a time, so that a light case never runs in the wake of a
        # heavy one (autovacuum, checkpoints); within it the two paths take turns.
        for concurrency in concurrencies:
            for run in range(runs):
                for mode in in_turn(run):
                    case = cases[mode, concurrency]
                    once = await drive(append_of(log, mode), entries(appends), concurrency)
                    case.rates += once.rates
                    case.failures += once.failures
        report = await log.verify()
        assert report.ok, report.summary()
    finally:
        await log.aclose()
        await db.dispose()
    return cases


def _child(url: str, mode: str, appends: int, concurrency: int, barrier: Any, results: Any) -> None:
    """One 'gateway process': its own engine and log, started with the others."""

    async def run() -> tuple[float, float, float, dict[str, int]]:
        db = Database(url)
        log = AuditLog(db)
        try:
            await drive(log.append, entries(10), 2)  # connect before the common start
            batch = entries(appends)
            barrier.wait()
            started = time.time()
            case = await drive(append_of(log, mode), batch, concurrency)
            finished = time.time()
            return started, finished, case.rates[0] * (finished - started), dict(case.failures)
        finally:
            await log.aclose()
            await db.dispose()

    results.put(asyncio.run(run()))


def measure_processes(url: str, mode: str, processes: int, appends: int, concurrency: int) -> Case:
    """All appends of ``processes`` processes (``concurrency`` callers each) over the
    wall time from their common start to the last one's end."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    children = [
        context.Process(target=_child, args=(url, mode, appends, concurrency, barrier, results))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    outcomes: list[tuple[float, float, float, dict[str, int]]] = [
        results.get(timeout=900) for _ in children
    ]
    for child in children:
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"a bench process failed with exit code {child.exitcode}")
    span = max(o[1] for o in outcomes) - min(o[0] for o in outcomes)
    case = Case([sum(o[2] for o in outcomes) / span])
    for outcome in outcomes:
        case.failures.update(outcome[3])
    return case


@contextmanager
def fresh_postgres(admin_url: str) -> Iterator[str]:
    """A new, migrated PostgreSQL database next to ``admin_url``'s, dropped afterwards."""
    name = f"samlad_bench_{uuid.uuid4().hex[:12]}"
    admin = make_url(admin_url)
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = admin.set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def print_table(title: str, cases: dict[tuple[str, str], Case]) -> None:
    """One line per case label: both modes' medians, their ratio, and any failures."""
    print(f"\n{title}")
    print(f"{'':<30} {LABELS['unbatched']:>19} {LABELS['batched']:>13} {'ratio':>7}")
    for label in dict.fromkeys(label for _, label in cases):
        old = statistics.median(cases["unbatched", label].rates)
        new = statistics.median(cases["batched", label].rates)
        print(f"{label:<30} {old:>19,.0f} {new:>13,.0f} {new / old:>6.1f}x")
        for mode in MODES:
            failures = cases[mode, label].failures
            if failures:
                causes = ", ".join(f"{n} {cause}" for cause, n in failures.most_common())
                print(f"{'':<30} {LABELS[mode]}: failed appends (503): {causes}")


def main() -> None:
    """Measure and print medians in appends per second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--appends", type=int, default=1000, help="per case and run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 128])
    parser.add_argument("--processes", type=int, default=2, help="0 to skip that part")
    parser.add_argument(
        "--process-concurrency", type=int, default=64, help="concurrent callers per process"
    )
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    # The store logs each failed write; the tables count them instead.
    logging.getLogger("store.db").setLevel(logging.CRITICAL)

    print(
        f"access log appends/s, median of {args.runs} runs in turns, "
        f"{args.appends} appends per case and run (and process)"
    )
    with fresh_postgres(args.postgres_url) as url:
        cases = asyncio.run(measure_in_process(url, args.runs, args.appends, args.concurrency))
        print_table(
            "PostgreSQL, one process",
            {(mode, f"concurrency {c}"): case for (mode, c), case in cases.items()},
        )
        if args.processes > 0:
            label = f"{args.processes} processes x {args.process_concurrency} concurrent"
            together = {(mode, label): Case() for mode in MODES}
            for run in range(args.runs):
                for mode in in_turn(run):
                    case = together[mode, label]
                    once = measure_processes(
                        url, mode, args.processes, args.appends, args.process_concurrency
                    )
                    case.rates += once.rates
                    case.failures += once.failures
            print_table("PostgreSQL, several processes on one database, all together", together)
        print(f"PostgreSQL chain after the run: {asyncio.run(_verify(url))}")
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="samlad-bench-audit-") as folder:
            url = f"sqlite:///{Path(folder) / 'samlad.db'}"
            upgrade(url)
            cases = asyncio.run(measure_in_process(url, args.runs, args.appends, args.concurrency))
            print_table(
                "SQLite, one process",
                {(mode, f"concurrency {c}"): case for (mode, c), case in cases.items()},
            )


async def _verify(url: str) -> str:
    db = Database(url)
    try:
        return (await AuditLog(db).verify()).summary()
    finally:
        await db.dispose()


if __name__ == "__main__":
    main()
