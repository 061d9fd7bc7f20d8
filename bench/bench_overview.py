"""Overview latency against its physical limit, measured side by side in one run.

For the test person (191212121212, about 1,100 resources across the three FHIR regions)
with every region given the same added latency per HTTP request:

* **gateway**: ``GET /fhir/Patient/{id}/$everything`` through a running gateway. Cold in
  the sense that matters: the gateway is set to serve nothing from its cache, so every
  request fetches everything again, normalises it and stores it (its connections to the
  regions are pooled, as in production).
* **limit**: the same fetches made directly with a plain httpx client per region:
  Patient search, then every type concurrently, each paged to the end, every region at
  once. Its wall time is the slowest region's; no gateway can answer sooner.

The two are interleaved (alternating which goes first) so drift hits both alike. Prints
the medians, overhead = median(gateway) - median(limit), the median of the per-pair
differences and the ratio; and the CPU the gateway process used per overview (from
``/proc``), which the machine's other work disturbs much less than the times. Regions
and the gateway run as separate processes on loopback; SQLite lives in a temporary
folder.

    .venv/bin/python -m bench.bench_overview [--latency-ms 50 200] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path

from bench.harness import (
    DirectClients,
    Issuer,
    RunningGateway,
    RunningRegion,
    everything,
    median,
    ms,
    open_gateway,
    region_sources,
    start_gateway,
    start_regions,
)

#: Generous on purpose: the benchmark measures speed, not the deadline.
BENCH_TIMEOUT = 60.0


def cpu_seconds(pid: int) -> float:
    """The user and system CPU a process has used so far, every thread's (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    gateway: RunningGateway,
    regions: list[RunningRegion],
    latency_ms: float,
    runs: int,
    warmup: int,
) -> None:
    for region in regions:
        region.set_latency(latency_ms)
    direct = DirectClients(regions)
    try:
        gateway_times: list[float] = []
        fan_out_times: list[float] = []
        limit_times: list[float] = []
        counts: set[tuple[int, int]] = set()
        cpu = 0.0
        pid = gateway.process.popen.pid
        for run in range(warmup + runs):
            order = ("gateway", "limit") if run % 2 == 0 else ("limit", "gateway")
            timed: dict[str, float] = {}
            for which in order:
                if which == "gateway":
                    before = cpu_seconds(pid)
                    overview = await everything(gateway)
                    if run >= warmup:
                        cpu += cpu_seconds(pid) - before
                    if set(overview.statuses.values()) != {"ok"}:
                        raise RuntimeError(f"incomplete overview: {overview.statuses}")
                    timed["gateway"] = overview.elapsed
                    timed["fan_out"] = overview.fan_out
                    gateway_total = overview.total
                else:
                    timed["limit"], direct_total = await direct.fetch_all()
            if run >= warmup:
                gateway_times.append(timed["gateway"])
                fan_out_times.append(timed["fan_out"])
                limit_times.append(timed["limit"])
                counts.add((gateway_total, direct_total))
    finally:
        await direct.aclose()
    pairs = [g - lim for g, lim in zip(gateway_times, limit_times, strict=True)]
    gateway_median, limit_median = median(gateway_times), median(limit_times)
    print(f"latency {latency_ms:g} ms per request, {runs} runs each (after {warmup} warm-up)")
    print(f"  resources (gateway total, direct): {sorted(counts)}")
    print(f"  gateway median      {ms(gateway_median)}  (min {ms(min(gateway_times))})")
    print(f"  limit median        {ms(limit_median)}  (min {ms(min(limit_times))})")
    print(f"  overhead            {ms(gateway_median - limit_median)}")
    print(f"  overhead, pairwise  {ms(statistics.median(pairs))} median of per-run differences")
    print(f"  ratio               {gateway_median / limit_median:8.3f}")
    fan_out = median(fan_out_times)
    print(f"  of which fan-out    {ms(fan_out)}  (slowest source's elapsedMs in the gateway)")
    print(f"  of which the rest   {ms(gateway_median - fan_out)}  (auth, merge, render, log)")
    print(f"  gateway CPU         {ms(cpu / runs)}  per overview (mean; the clock ticks 10 ms)")


async def run(latencies: list[float], runs: int, warmup: int) -> None:
    with tempfile.TemporaryDirectory(prefix="samlad-bench-") as tmp:
        folder = Path(tmp)
        regions = start_regions(folder)
        gateway = None
        try:
            issuer = Issuer.create(folder)
            gateway = start_gateway(
                "gateway",
                folder / "gateway",
                issuer,
                region_sources(regions, BENCH_TIMEOUT),
                folder,
                request_deadline=BENCH_TIMEOUT,
                # Cold: every read fetches everything again (and stores it); the in-memory
                # copies are keyed by sync time, so none outlives its request.
                cache_fresh_seconds=0,
                cache_full_refresh_seconds=0,
            )
            await open_gateway(gateway)
            try:
                for latency in latencies:
                    await measure(gateway, regions, latency, runs, warmup)
            finally:
                await gateway.client.aclose()
        finally:
            if gateway is not None:
                gateway.process.stop()
            for region in regions:
                region.process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[50.0, 200.0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.latency_ms, args.runs, args.warmup))


if __name__ == "__main__":
    main()
