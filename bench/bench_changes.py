"""What recording subscription changes costs a refresh's cache write: a full refresh of
one person's record (1,000 Observations, 50 Appointments, 50 DocumentReferences, one of
them new each time) stored through :meth:`gateway.collect.cache.RecordCache.save`, with
the change log (:mod:`gateway.collect.changes`: the owner index read for those types,
the new ids written to the outbox) and with it left out, side by side: first while
nobody subscribes (the change log then only asks whether anyone does), then with a live
subscription for the person (the owner index read, the new id written).

The two run in turns, each first every other round, on one database; printed are the
medians over the rounds of CPU time per write (this process's, SQLite's thread
included; PostgreSQL's own work is not counted) and their ratio, per phase.

    python -m bench.bench_changes [--rounds 7] [--writes 20] [--postgres URL]

Without ``--postgres``: SQLite in a temporary folder. With it (for instance the tests'
server, ``postgresql://postgres@127.0.0.1:5432/test``): a fresh database, dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.harness import fresh_postgres
from gateway.collect.cache import RecordCache
from store.db import Database
from store.jobs import Subscription
from store.migrate import upgrade

PATIENT, SOURCE = "bench-patient", "region-bench"
LAB_RESULT = "https://samlad.se/fhir/SubscriptionTopic/lab-result"


class _NoChanges:
    """The change log left out."""

    async def replaced(
        self, conn: AsyncConnection, patient_id: str, source_id: str, ids: Mapping[str, Any]
    ) -> None:
        return None

    async def changed(self, conn: AsyncConnection, patient_id: str, *given: Any) -> None:
        return None


def _record(serial: int) -> dict[str, list[dict[str, Any]]]:
    def made(kind: str, count: int) -> list[dict[str, Any]]:
        return [
            {
                "resourceType": kind,
                "id": f"{SOURCE}.{kind.lower()}-{n}",
                "meta": {"lastUpdated": "2026-01-01T00:00:00+00:00"},
                "status": "final",
                "subject": {"reference": f"Patient/{PATIENT}"},
                "code": {"text": f"{kind} number {n}"},
            }
            for n in range(count)
        ]

    record = {
        "Observation": made("Observation", 1000),
        "Appointment": made("Appointment", 50),
        "DocumentReference": made("DocumentReference", 50),
    }
    # One new result each time: the change log has an event to write.
    record["Observation"][-1]["id"] = f"{SOURCE}.new-{serial}"
    return record


async def _run(cache: RecordCache, writes: int, serial: list[int]) -> float:
    """CPU seconds of this process (its threads: SQLite's included) per full refresh
    written: less disturbed by the machine's other work than wall time."""
    start = time.process_time()
    for _ in range(writes):
        serial[0] += 1
        synced = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=serial[0])
        await cache.save(PATIENT, SOURCE, _record(serial[0]), synced, full=True)
    return (time.process_time() - start) / writes


async def _phase(
    setups: Mapping[str, RecordCache], rounds: int, writes: int, serial: list[int]
) -> None:
    figures: dict[str, list[float]] = {name: [] for name in setups}
    for round_ in range(rounds):
        order: Sequence[str] = list(setups) if round_ % 2 == 0 else list(reversed(setups))
        for name in order:
            figures[name].append(await _run(setups[name], writes, serial))
    medians = {name: statistics.median(values) for name, values in figures.items()}
    for name, value in medians.items():
        print(f"    {name:22} {value * 1000:8.2f} ms CPU per write")
    ratio = medians["with the change log"] / medians["without"]
    print(f"    ratio with/without     {ratio:8.3f}")


async def _subscribe(db: Database) -> None:
    row = {
        "id": "bench",
        "client_id": "bench",
        "care_provider_hsa_id": "bench",
        "scopes": [],
        "topic": LAB_RESULT,
        "patient_id": PATIENT,
        "endpoint": "https://receiver.invalid/",
        "payload": "id-only",
        "timeout_seconds": 10,
        "status": "active",
        "events": 0,
        "created_at": datetime.now(UTC),
    }

    async def work(conn: AsyncConnection) -> None:
        await conn.execute(insert(Subscription.__table__).values(**row))  # type: ignore[attr-defined]

    await db.write(work)


async def main(url: str, rounds: int, writes: int) -> None:
    upgrade(url)
    db = Database(url)
    try:
        with_log = RecordCache(db, "bench-data-key-0123456789", timedelta(hours=24))
        without = RecordCache(db, "bench-data-key-0123456789", timedelta(hours=24))
        without._changes = _NoChanges()  # type: ignore[assignment]
        serial = [0]  # each write a later sync than the last, so each is stored
        await _run(with_log, 2, serial)  # the first sync, and warm-up
        setups = {"with the change log": with_log, "without": without}
        print(f"{rounds} rounds of {writes} full refreshes of 1,100 resources; medians")
        print("  nobody subscribes:")
        await _phase(setups, rounds, writes, serial)
        await _subscribe(db)
        print("  a live subscription for the person:")
        await _phase(setups, rounds, writes, serial)
    finally:
        await db.dispose()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()
    with ExitStack() as stack:
        if args.postgres:
            url = stack.enter_context(fresh_postgres(args.postgres))
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            url = f"sqlite:///{folder / 'bench.db'}"
        asyncio.run(main(url, args.rounds, args.writes))


if __name__ == "__main__":
    cli()
