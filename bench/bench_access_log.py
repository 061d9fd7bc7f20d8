"""What a page of the patient's access log costs to read, by the length of the log.

Every page of ``AuditEvent?patient=`` knows the patient's whole log, so that its total is
exact and counts only what the reader is shown. For a reader shown every entry it reads
the keys (seq, recorded_at) of all of them and then the page's 50 entries
(``keys``); a guardian's reading reads every entry, a thousand at a time by seq
(``whole``). This times both for logs of several lengths and, side by side in the same
run, the single capped read the first replaced (the newest 1000 entries, ``capped``),
each going first in turn; medians are printed. SQLite in a temporary folder.

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


async def _keys(log: AuditLog) -> int:
    """The keys of the whole log, then the first page's 50 entries."""
    keys = await log.keys_for_patient(PATIENT)
    return len(keys) + len(await log.by_seq(PATIENT, [seq for seq, _ in keys[:50]]))


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
            reads = {"keys": _keys, "whole": _whole, "capped": _capped}
            times: dict[str, list[float]] = {name: [] for name in reads}
            names = list(reads)
            for run in range(runs):
                for name in names[run % 3 :] + names[: run % 3]:
                    started = time.perf_counter()
                    await reads[name](log)
                    times[name].append(time.perf_counter() - started)
            keys, whole, capped = (statistics.median(times[n]) * 1000 for n in names)
            print(
                f"{length:>7} entries: keys + page {keys:7.1f} ms, whole log {whole:8.1f} ms,"
                f" newest 1000 {capped:6.1f} ms; keys/capped {keys / capped:5.1f},"
                f" whole/keys {whole / keys:5.1f}"
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
