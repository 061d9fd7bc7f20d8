"""What one request to a source costs the gateway's HTTP client, by client and set-up.

A source's answer is the same searchset Bundle every time (``--entries`` laboratory
Observations, about 0.8 kB each), served on loopback by a bare ASGI app under uvicorn in
a process of its own, so that only the client's work is measured: the CPU this process
spends (``time.process_time``) for ``--requests`` GETs made ``--concurrency`` at a time
over kept-alive connections, and the rate it makes them at. Ways compared, in rounds
that rotate their order (medians over the rounds):

* **exchange**: what the adapters do (``adapters.transport.exchange``: each request in a
  task of its own, httpcore's trace hook, the body streamed and capped), on an
  ``httpx.AsyncClient`` set up as ``gateway.services`` sets a source's up (as many
  connections as ``source_max_concurrency``, 16);
* **exchange, 4 connections**: the same with a pool of 4 (httpcore checks every
  connection of a pool whenever a request is assigned or a response closed);
* **httpx get**: ``client.get(...).content`` on the same client, without the exchange;
* **aiohttp**: ``aiohttp.ClientSession`` with 16 connections, ``read()`` (installed with
  the development dependencies only: a comparison, not a candidate unless it wins);
* **exchange over aiohttp**: the adapters' exchange on an ``httpx.AsyncClient`` whose
  transport is aiohttp's pool (a sketch: what httpx's own layers cost without httpcore);
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

import httpx
import orjson

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


def _source_client(connections: int) -> httpx.AsyncClient:
    """A source's client as ``gateway.services`` makes it."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0),
        limits=httpx.Limits(
            max_connections=connections, max_keepalive_connections=min(connections, 20)
        ),
        follow_redirects=False,
    )


class _AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's API over aiohttp's connection pool (a sketch for measuring: no timeouts of
    httpx's, no httpcore trace hook)."""

    def __init__(self, session: Any) -> None:
        self._session = session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._session.request(
            request.method,
            str(request.url),
            headers=list(request.headers.multi_items()),
            data=request.content or None,
            allow_redirects=False,
        )

        class Body(httpx.AsyncByteStream):
            async def __aiter__(self) -> Any:
                async for chunk in response.content.iter_any():
                    yield chunk

            async def aclose(self) -> None:
                response.release()

        return httpx.Response(response.status, headers=response.raw_headers, stream=Body())

    async def aclose(self) -> None:
        await self._session.close()


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

    for name, connections in (("exchange", 16), ("exchange, 4 connections", 4)):
        client = clients[name] = _source_client(connections)

        async def by_exchange(client: httpx.AsyncClient = client) -> None:
            request = client.build_request("GET", url, headers=HEADERS)
            status, body = await exchange(client, request, "bench search", limit=limit)
            _check(status, len(body), expected)

        ways[name] = by_exchange

    plain = clients["httpx get"] = _source_client(16)

    async def by_get() -> None:
        response = await plain.get(url, headers=HEADERS)
        _check(response.status_code, len(response.content), expected)

    ways["httpx get"] = by_get

    if find_spec("aiohttp") is not None:
        import aiohttp

        session = clients["aiohttp"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=16), headers=HEADERS
        )

        async def by_aiohttp() -> None:
            async with session.get(url) as response:
                body = await response.read()
            _check(response.status, len(body), expected)

        ways["aiohttp"] = by_aiohttp

        over = clients["httpx over aiohttp"] = httpx.AsyncClient(
            transport=_AiohttpTransport(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=16), auto_decompress=False
                )
            ),
            timeout=httpx.Timeout(10.0, connect=5.0),
            follow_redirects=False,
        )

        async def by_exchange_over_aiohttp() -> None:
            request = over.build_request("GET", url, headers=HEADERS)
            status, body = await exchange(over, request, "bench search", limit=limit)
            _check(status, len(body), expected)

        ways["exchange over aiohttp"] = by_exchange_over_aiohttp

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
