"""Warm reads while every record turns stale: stale-while-revalidate against refreshing
in the foreground, side by side.

The test person's record is fetched once (cold); then ``--connections`` clients read
``GET /fhir/Observation?patient=<id>&_count=50`` as the person for ``--duration``
seconds. The record turns stale ``--fresh`` seconds after it was fetched, mid-run. The
rate is counted per second: the **fresh** rate is the median of the whole seconds before
the record turns stale; the **stale** rate is the rate over the ``--window`` seconds after
(and its worst second). Two gateways, each a fresh process on SQLite in a folder of its
own, the three simulated regions (subprocesses) as sources:

* **swr**: ``cache_stale_seconds = 3600``: a stale read is answered from the cache and one
  refresh per source runs in the background (status ``revalidating``);
* **foreground**: ``cache_stale_seconds = 0``, the refresh of before: every read that
  finds the record stale asks the sources before it answers.

Rounds alternate the two (the order rotating), so the shared machine's drift hits both
alike; figures are medians over the rounds. Goal: the stale rate within 20 % of the
fresh rate.

    .venv/bin/python -m bench.bench_stale [--connections 16] [--fresh 6] [--duration 14]
                                          [--window 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import (
    Issuer,
    RunningGateway,
    median,
    open_gateway,
    region_sources,
    start_gateway,
    start_regions,
)

VARIANTS = {"swr": 3600.0, "foreground": 0.0}


@dataclass
class Run:
    fresh: float  # req/s, median of the whole seconds before the record turns stale
    stale: float  # req/s over the window after it turns stale
    worst: float  # req/s in the window's slowest second
    statuses: set[str]
    errors: int


async def _load(
    gateway: RunningGateway, connections: int, duration: float
) -> tuple[float, list[float], int, set[str]]:
    """Read the page from ``connections`` clients for ``duration`` seconds; when the load
    began (monotonic), each answer's time, the errors, and the sources' statuses seen."""
    path = f"/Observation?patient={gateway.patient_id}&_count=50"
    done: list[float] = []
    statuses: set[str] = set()
    errors = 0
    began = time.monotonic()

    async def client() -> None:
        nonlocal errors
        while time.monotonic() - began < duration:
            response = await gateway.client.get(path)
            if response.status_code != 200:
                errors += 1
                continue
            done.append(time.monotonic())
            if len(done) % 20 == 0:
                statuses.update(_statuses(response.json()))

    await asyncio.gather(*(client() for _ in range(connections)))
    return began, done, errors, statuses


def _statuses(bundle: dict[str, object]) -> set[str]:
    found = set()
    for entry in bundle.get("entry", []):  # type: ignore[attr-defined]
        resource = entry["resource"]
        if resource["resourceType"] != "OperationOutcome":
            continue
        for issue in resource.get("issue", []):
            for extension in issue.get("extension", []):
                for part in extension.get("extension", []):
                    if part["url"] == "status":
                        found.add(part["valueCode"])
    return found


async def _measure(
    gateway: RunningGateway, connections: int, fresh: float, duration: float, window: float
) -> Run:
    for attempt in range(3):  # a cold lookup on a busy machine may time out
        try:
            await open_gateway(gateway)
            break
        except (StopIteration, RuntimeError, httpx.HTTPError):
            if attempt == 2:
                raise
    gateway.client = httpx.AsyncClient(
        base_url=gateway.base_url,
        headers=gateway.client.headers,
        timeout=120.0,
        limits=httpx.Limits(max_connections=connections),
    )
    # The cold read: the record (the Patient with it) is fetched, and synced, now.
    synced = time.monotonic()
    cold = await gateway.client.get(f"/Observation?patient={gateway.patient_id}&_count=50")
    cold.raise_for_status()
    try:
        began, done, errors, statuses = await _load(gateway, connections, duration)
    finally:
        await gateway.client.aclose()
    turns_stale = synced + fresh
    per_second = [
        sum(1 for t in done if began + s <= t < began + s + 1)
        for s in range(int(turns_stale - began))
    ]
    after = [t for t in done if turns_stale <= t < turns_stale + window]
    seconds = [
        sum(1 for t in after if turns_stale + s <= t < turns_stale + s + 1)
        for s in range(int(window))
    ]
    return Run(
        fresh=median(per_second[1:]) if len(per_second) > 1 else float("nan"),
        stale=len(after) / window,
        worst=min(seconds),
        statuses=statuses,
        errors=errors,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--fresh", type=float, default=6.0)
    parser.add_argument("--duration", type=float, default=14.0)
    parser.add_argument("--window", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[Run]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="samlad-bench-stale-") as tmp:
        folder = Path(tmp)
        regions = start_regions(folder)
        try:
            issuer = Issuer.create(folder)
            order = list(VARIANTS)
            for number in range(args.rounds):
                for name in order:
                    gateway = start_gateway(
                        name,
                        folder / f"{name}-{number}",
                        issuer,
                        region_sources(regions, 10.0),
                        folder,
                        cache_fresh_seconds=args.fresh,
                        cache_stale_seconds=VARIANTS[name],
                        rate_limit_enabled=False,
                    )
                    try:
                        run = await _measure(
                            gateway, args.connections, args.fresh, args.duration, args.window
                        )
                    finally:
                        gateway.process.stop()
                    results[name].append(run)
                    print(
                        f"round {number + 1} {name:>10}: fresh {run.fresh:7.1f} req/s,"
                        f" stale {run.stale:7.1f} req/s (worst second {run.worst}),"
                        f" errors {run.errors}, statuses {sorted(run.statuses)}",
                        flush=True,
                    )
                order.reverse()
        finally:
            for region in regions:
                region.process.stop()
    print()
    print("| refresh | fresh req/s | stale req/s (window) | worst second | stale/fresh |")
    print("| --- | --- | --- | --- | --- |")
    for name, runs in results.items():
        fresh = median([r.fresh for r in runs])
        stale = median([r.stale for r in runs])
        worst = median([float(r.worst) for r in runs])
        print(f"| {name} | {fresh:.1f} | {stale:.1f} | {worst:.0f} | {stale / fresh:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
