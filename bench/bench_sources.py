"""Overview latency with 200 configured sources against 3, measured side by side.

Two gateways run at once against the same three FHIR regions, which hold the test
person's data (191212121212). One is configured with just those three; the other also
with 197 more sources that answer the Patient search with an empty searchset: regions
that never saw the person. The first look at the person (the Patient search) asks all
200 and teaches the engagement index which hold data; the measured overviews then ask
only those (plus a full check at most every ``engagement_full_check_seconds``), so the
question is what the 197 still cost. Every source, empty or not, adds the same latency to
each HTTP request. The empty sources are Starlette apps, 50 per uvicorn server, in one
subprocess; the gateways and the three regions are subprocesses of their own.

Prints the median ``$everything`` latency of each gateway (interleaved runs), the
difference and the ratio; the goal is a ratio within 1.10. Also the first request of
each, when the gateway opens its connections to every source.

    .venv/bin/python -m bench.bench_sources [--sources 200] [--latency-ms 50] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.harness import (
    Issuer,
    Process,
    RunningGateway,
    everything,
    free_port,
    median,
    memory_of,
    ms,
    open_gateway,
    region_sources,
    spawn,
    start_gateway,
    start_regions,
    wait_until_up,
)
from simregions.server import bind_socket, make_server

BENCH_TIMEOUT = 60.0
SOURCES_PER_SERVER = 50
EMPTY_SEARCHSET = orjson.dumps({"resourceType": "Bundle", "type": "searchset", "total": 0})


def empty_sources_app(latency_ms: float) -> Starlette:
    """Any number of FHIR sources under ``/s{n}/fhir`` that know nobody."""

    async def patient_search(request: Request) -> Response:
        await request.body()
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        return Response(EMPTY_SEARCHSET, media_type="application/fhir+json")

    async def metadata(request: Request) -> Response:
        return Response(b'{"resourceType": "CapabilityStatement"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/s{n:int}/fhir/Patient/_search", patient_search, methods=["POST"]),
            Route("/metadata", metadata, methods=["GET"]),
        ]
    )


async def serve_empty(ports: list[int], latency_ms: float) -> None:
    """Serve the empty sources on each of ``ports`` until interrupted."""
    servers = [make_server(empty_sources_app(latency_ms)) for _ in ports]
    sockets: list[socket.socket] = [bind_socket(port=port) for port in ports]
    await asyncio.gather(
        *(server.serve(sockets=[sock]) for server, sock in zip(servers, sockets, strict=True))
    )


def empty_source_entries(count: int, ports: list[int]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"empty-{n:03d}",
            "name": f"Empty source {n}",
            "kind": "fhir-r4",
            "base_url": f"http://127.0.0.1:{ports[n // SOURCES_PER_SERVER]}/s{n}/fhir",
            "timeout": BENCH_TIMEOUT,
        }
        for n in range(count)
    ]


async def measure(
    small: RunningGateway, large: RunningGateway, runs: int, warmup: int, expect: int
) -> None:
    first: dict[str, float] = {}
    times: dict[str, list[float]] = {"small": [], "large": []}
    fan_out: dict[str, list[float]] = {"small": [], "large": []}
    for run in range(warmup + runs):
        order = [("small", small), ("large", large)]
        if run % 2:
            order.reverse()
        for name, gateway in order:
            overview = await everything(gateway)
            elapsed, statuses = overview.elapsed, overview.statuses
            configured = expect if name == "large" else 3
            if len(statuses) != configured:
                raise RuntimeError(f"{name}: {len(statuses)} source statuses")
            if sum(1 for s in statuses.values() if s == "ok") != 3:
                raise RuntimeError(f"{name}: incomplete overview")
            if run == 0:
                first[name] = elapsed
            if run >= warmup:
                times[name].append(elapsed)
                fan_out[name].append(overview.fan_out)
    small_median, large_median = median(times["small"]), median(times["large"])
    pairs = [g - s for g, s in zip(times["large"], times["small"], strict=True)]
    print(f"{runs} runs each (after {warmup} warm-up), interleaved")
    print(f"  first request, 3 sources      {ms(first['small'])}")
    print(f"  first request, {expect} sources    {ms(first['large'])}")
    print(f"  median, 3 sources             {ms(small_median)}")
    print(f"  median, {expect} sources           {ms(large_median)}")
    print(f"  difference                    {ms(large_median - small_median)}")
    print(f"  difference, pairwise median   {ms(statistics.median(pairs))}")
    print(f"  ratio                         {large_median / small_median:8.3f}  (goal <= 1.10)")
    for name, count in (("small", 3), ("large", expect)):
        spread = median(fan_out[name])
        rest = median(times[name]) - spread
        print(f"  {count:3d} sources: fan-out {ms(spread)}, the rest {ms(rest)}")


async def run(total_sources: int, latency_ms: float, runs: int, warmup: int) -> None:
    empty_count = total_sources - 3
    with tempfile.TemporaryDirectory(prefix="samlad-bench-") as tmp:
        folder = Path(tmp)
        processes: list[Process] = []
        gateways: list[RunningGateway] = []
        try:
            regions = start_regions(folder)
            processes += [r.process for r in regions]
            for region in regions:
                region.set_latency(latency_ms)
            servers = (empty_count + SOURCES_PER_SERVER - 1) // SOURCES_PER_SERVER
            ports = [free_port() for _ in range(servers)]
            empty = spawn(
                "empty-sources",
                [
                    "-m",
                    "bench.bench_sources",
                    "--serve-empty",
                    ",".join(map(str, ports)),
                    "--latency-ms",
                    str(latency_ms),
                ],
                folder,
            )
            processes.append(empty)
            for port in ports:
                wait_until_up(f"http://127.0.0.1:{port}/metadata", empty)
            issuer = Issuer.create(folder)
            real = region_sources(regions, BENCH_TIMEOUT)
            for name, sources in (
                ("small", real),
                ("large", real + empty_source_entries(empty_count, ports)),
            ):
                gateway = start_gateway(
                    f"gateway-{name}",
                    folder / name,
                    issuer,
                    sources,
                    folder,
                    request_deadline=BENCH_TIMEOUT,
                    # Cold: every read fetches everything again (and stores it); the in-memory
                    # copies are keyed by sync time, so none outlives its request.
                    cache_fresh_seconds=0,
                    cache_full_refresh_seconds=0,
                )
                gateways.append(gateway)
                processes.append(gateway.process)
            for gateway in gateways:
                await open_gateway(gateway)
            resident = [memory_of(g.process.popen.pid)["VmRSS"] / 1e6 for g in gateways]
            print(
                "resident memory after the first look (every source asked once):"
                f" {resident[0]:.1f} MB with 3 sources, {resident[1]:.1f} MB with"
                f" {total_sources} ({(resident[1] - resident[0]) / (total_sources - 3) * 1e3:.0f}"
                " kB a source more); MB = 10^6 bytes"
            )
            print(f"latency {latency_ms:g} ms per request at every source")
            await measure(gateways[0], gateways[1], runs, warmup, total_sources)
        finally:
            for gateway in gateways:
                if hasattr(gateway, "client"):
                    await gateway.client.aclose()
            for process in reversed(processes):
                process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--serve-empty", help="internal: serve empty sources on these ports")
    args = parser.parse_args()
    if args.serve_empty:
        ports = [int(p) for p in args.serve_empty.split(",")]
        asyncio.run(serve_empty(ports, args.latency_ms))
        return
    if args.sources < 4:
        parser.error("--sources must be at least 4")
    asyncio.run(run(args.sources, args.latency_ms, args.runs, args.warmup))


if __name__ == "__main__":
    main()
