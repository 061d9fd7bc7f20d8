"""What a page of the patient's access log costs to read, by the length of the log.

Every page of ``AuditEvent?patient=`` reads the patient's whole log, a thousand entries
at a time by seq (``PatientChoices.access_log``), so that its total is exact and counts
only what the reader is shown. This times that read for logs of several lengths and, side
by side in the same run, the single capped read it replaced (the newest 1000 entries),
each going first every other run; medians are printed. SQLite in a temporary folder.

    python -m bench.bench_access_log [--runs 7] [--lengths 1000 10000 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from consent.audit import AuditLog
from consent.entries import AuditEntryCreate
from store.db import Database
from store.migrate import upgrade

PATIENT = "pat-bench-0000000000000000000000"


def _entry() -> AuditEntryCreate:
    return AuditEntryCreate(
        actor_kind="clinician",
        actor_id="SE2321000016-DR01",
        actor_care_unit_hsa_id="SE2321000016-UNIT",
        actor_care_provider_hsa_id="SE2321000016-PROV",
        patient_id=PATIENT,
        action="search",
        resource_types=["Observation"],
        returned_count=3,
        returned={"types": {"Observation": 3}, "sources": ["region-a"]},
        purpose="TREAT",
        outcome="allowed",
    )


async def _whole(log: AuditLog) -> int:
    """The whole log, as every page now reads it."""
    count, below = 0, None
    while True:
        batch = await log.for_patient(PATIENT, upto=below, limit=1000)
        count += len(batch)
        if len(batch) < 1000:
            return count
        below = batch[-1].seq - 1


async def _capped(log: AuditLog) -> int:
    """The newest 1000 entries, as the one read before."""
    return len(await log.for_patient(PATIENT, limit=1000))


async def _measure(length: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        upgrade(url)
        database = Database(url)
        log = AuditLog(database)
        try:
            for start in range(0, length, 1000):
                size = min(1000, length - start)
                await asyncio.gather(*(log.append(_entry()) for _ in range(size)))
            times: dict[str, list[float]] = {"whole": [], "capped": []}
            for run in range(runs):
                order = ("whole", "capped") if run % 2 == 0 else ("capped", "whole")
                for name in order:
                    read = _whole if name == "whole" else _capped
                    started = time.perf_counter()
                    await read(log)
                    times[name].append(time.perf_counter() - started)
            whole = statistics.median(times["whole"]) * 1000
            capped = statistics.median(times["capped"]) * 1000
            print(
                f"{length:>7} entries: whole log {whole:8.1f} ms, newest 1000 {capped:6.1f} ms,"
                f" ratio {whole / capped:5.1f}"
            )
        finally:
            await log.aclose()
            await database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1000, 10000, 50000])
    args = parser.parse_args()
    for length in args.lengths:
        asyncio.run(_measure(length, args.runs))


if __name__ == "__main__":
    main()
