"""What one request to a source costs the gateway's HTTP client, by client and set-up.

A source's answer is the same searchset Bundle every time (``--entries`` laboratory
Observations, about 0.8 kB each), served on loopback by a bare ASGI app under uvicorn in
a process of its own, so that only the client's work is measured: the CPU this process
spends (``time.process_time``) for ``--requests`` GETs made ``--concurrency`` at a time
over kept-alive connections, and the rate it makes them at. Ways compared, in rounds
that rotate their order (medians over the rounds):

* **exchange**: what the adapters do (``adapters.transport.exchange``: the body streamed
  and capped) on a source's client as ``gateway.services`` makes it
  (``adapters.client.source_client``: httpx over aiohttp's pool, as many connections as
  ``source_max_concurrency``, 16);
* **exchange on httpx's pool**: the same exchange on an ``httpx.AsyncClient`` with httpx's
  own pool (httpcore) of 16, as sources were reached before (section 24);
* **httpx get**: ``client.get(...).content`` on that httpx client, without the exchange;
* **aiohttp**: ``aiohttp.ClientSession`` with 16 connections, ``read()``: the pool alone;
* **HTTP/2**: httpx with ``http2=True`` when the ``h2`` package is installed (it is not in
  the lock; reported as not measured otherwise). Uvicorn serves HTTP/1.1 only, so
  HTTP/2 could not be measured against it anyway.

    .venv/bin/python -m bench.bench_client [--requests 3000] [--concurrency 16]
                                           [--rounds 5] [--entries 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from adapters.client import source_client
from adapters.transport import exchange
from bench.harness import free_port, median, spawn, wait_until_up

#: The body every request is answered with (set by :func:`_body`).
_BODY = b""


def _body(entries: int) -> bytes:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}], "text": "Hb"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-11-02T08:30:00+01:00",
        "valueQuantity": {"value": 142, "unit": "g/L", "system": "http://unitsofmeasure.org"},
        "referenceRange": [{"low": {"value": 134}, "high": {"value": 170}}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries,
        "entry": [
            {
                "fullUrl": f"http://127.0.0.1/fhir/Observation/o{i}",
                "resource": {**observation, "id": f"o{i}"},
                "search": {"mode": "match"},
            }
            for i in range(entries)
        ],
    }
    return orjson.dumps(bundle)


async def server(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The source: the same Bundle for every GET (``--entries`` from the environment)."""
    global _BODY
    if scope["type"] == "lifespan":
        _BODY = _body(int(os.environ.get("BENCH_CLIENT_ENTRIES", "20")))
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/fhir+json")],
        }
    )
    await send({"type": "http.response.body", "body": _BODY})


def _check(status: int, size: int, expected: int) -> None:
    if status != 200 or size != expected:
        raise RuntimeError(f"a wrong answer: {status}, {size} bytes where {expected} were sent")


def _httpx_client(connections: int) -> httpx.AsyncClient:
    """A source's client as ``gateway.services`` made it before ``source_client``."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0),
        limits=httpx.Limits(
            max_connections=connections, max_keepalive_connections=min(connections, 20)
        ),
        follow_redirects=False,
    )


HEADERS = {"Accept": "application/fhir+json"}


async def _run(
    way: Callable[[], Awaitable[None]], requests: int, concurrency: int
) -> tuple[float, float]:
    """CPU seconds per request and requests per second of ``requests`` calls of ``way``,
    ``concurrency`` at a time."""
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await way()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / requests, requests / wall


async def measure(url: str, args: argparse.Namespace) -> dict[str, tuple[list[float], list[float]]]:
    limit = 10 * 1024 * 1024
    expected = len(_body(args.entries))
    clients: dict[str, Any] = {}
    ways: dict[str, Callable[[], Awaitable[None]]] = {}

    for name, client in (
        ("exchange", source_client(timeout=10.0, connect_timeout=5.0, max_connections=16)),
        ("exchange on httpx's pool", _httpx_client(16)),
    ):
        clients[name] = client

        async def by_exchange(client: httpx.AsyncClient = client) -> None:
            request = client.build_request("GET", url, headers=HEADERS)
            status, body = await exchange(client, request, "bench search", limit=limit)
            _check(status, len(body), expected)

        ways[name] = by_exchange

    plain = clients["httpx get"] = _httpx_client(16)

    async def by_get() -> None:
        response = await plain.get(url, headers=HEADERS)
        _check(response.status_code, len(response.content), expected)

    ways["httpx get"] = by_get

    session = clients["aiohttp"] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=16), headers=HEADERS
    )

    async def by_aiohttp() -> None:
        async with session.get(url) as response:
            body = await response.read()
        _check(response.status, len(body), expected)

    ways["aiohttp"] = by_aiohttp

    names = list(ways)
    figures: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in names}
    try:
        for name in names:  # warm every pool up
            await _run(ways[name], 200, args.concurrency)
        for round_ in range(args.rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                cpu, rate = await _run(ways[name], args.requests, args.concurrency)
                figures[name][0].append(cpu)
                figures[name][1].append(rate)
    finally:
        for client in clients.values():
            if isinstance(client, httpx.AsyncClient):
                await client.aclose()
            else:
                await client.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--entries", type=int, default=20)
    args = parser.parse_args()

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        source = spawn(
            "source",
            [
                "-m",
                "uvicorn",
                "bench.bench_client:server",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            Path(tmp),
            {"BENCH_CLIENT_ENTRIES": str(args.entries)},
        )
        try:
            url = f"http://127.0.0.1:{port}/fhir/Observation"
            wait_until_up(url, source)
            figures = asyncio.run(measure(url, args))
        finally:
            source.stop()

    size = len(_body(args.entries))
    print(
        f"{args.requests} GETs of a {size / 1024:.1f} kB Bundle ({args.entries} entries),"
        f" {args.concurrency} at a time, {args.rounds} rounds in rotating order;"
        " client CPU per request and rate, medians over the rounds"
    )
    print(f"{'way':28} {'CPU us/request':>15} {'(each round)':>30} {'req/s':>8}")
    base = median(figures["exchange"][0])
    for name, (cpu, rate) in figures.items():
        rounds = ", ".join(f"{c * 1e6:.0f}" for c in cpu)
        print(
            f"{name:28} {median(cpu) * 1e6:15.1f} {'(' + rounds + ')':>30}"
            f" {median(rate):8.0f}   {median(cpu) / base:.2f} x exchange"
        )
    if find_spec("h2") is None:
        print("HTTP/2: not measured (the h2 package is not installed; uvicorn serves HTTP/1.1)")


if __name__ == "__main__":
    main()
