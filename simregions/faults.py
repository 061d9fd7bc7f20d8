"""Fault injection at the ASGI level: how each :data:`~simregions.behaviour.FAULTS` mode looks
on the wire.

Most faults are whole responses (500, 503, 429, broken JSON). Some need control of the
byte stream, so they wrap the real response: ``reset`` sends part of the body and then
drops the connection, ``slow-drip`` sends the body a few bytes at a time. ``timeout`` never
answers but stops waiting as soon as the client hangs up. ``down`` cannot be done from
inside ASGI (the connection must close before any response), so it is a connection gate the
simulated regions' server consults per request; see :func:`simregions.server.make_server`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simregions.behaviour import (
    DRIP_CHUNK_BYTES,
    DRIP_INTERVAL_SECONDS,
    TIMEOUT_HANG_SECONDS,
)
from simregions.fhirhttp import FHIR_JSON, operation_outcome

#: Set in the scope when the ``next-loop`` fault applies; the search route honours it.
NEXT_LOOP_SCOPE_KEY = "simregions.next_loop"

_MALFORMED_JSON = (
    b'{"resourceType":"Bundle","type":"searchset","total":3,"entry":[{"fullUrl":"urn:uuid:1",'
    b'"resource":{"resourceType":"Observation","status":"final","valueQuantity":{"value":1'
)
# Well-formed JSON, but no FHIR resource: wrong types, an unknown bundle type, no subject.
_INVALID_FHIR = orjson.dumps(
    {
        "resourceType": "Bundle",
        "type": "not-a-bundle-type",
        "total": "many",
        "entry": [{"resource": {"resourceType": "Observation", "status": 17, "code": "CRP"}}],
        "link": {"relation": "next"},
    }
)


class SimulatedReset(Exception):
    """Raised after a partial body so the server drops the connection (the ``reset`` fault)."""


class _ResetLogFilter(logging.Filter):
    """Keeps the server from logging a traceback for every deliberate reset."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], SimulatedReset))


_RESET_FILTER = _ResetLogFilter()


def quiet_reset_logging() -> None:
    """Install (once) the log filter that hides deliberate resets from uvicorn's error log."""
    logger = logging.getLogger("uvicorn.error")
    if _RESET_FILTER not in logger.filters:
        logger.addFilter(_RESET_FILTER)


async def _send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    media_type: str = FHIR_JSON,
) -> None:
    raw = [
        (b"content-type", media_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _outcome(send: Send, status: int, code: str, text: str, **headers: str) -> None:
    extra = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    await _send_bytes(send, status, orjson.dumps(operation_outcome(code, text)), extra)


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


@dataclass
class _Captured:
    status: int = 500
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)


async def _capture(inner: ASGIApp, scope: Scope, receive: Receive) -> _Captured:
    """Run ``inner`` to completion and keep its response instead of sending it."""
    captured = _Captured()

    async def keep(message: Message) -> None:
        if message["type"] == "http.response.start":
            captured.status = message["status"]
            captured.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            captured.body.extend(message.get("body", b""))

    await inner(scope, receive, keep)
    return captured


def _with_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


async def apply_fault(
    fault: str, inner: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer one HTTP request the way fault ``fault`` prescribes (``inner`` is the real app)."""
    if fault == "error-500":
        await _outcome(send, 500, "exception", "Simulated internal server error")
    elif fault == "unavailable-503":
        await _outcome(send, 503, "transient", "Simulated service unavailable")
    elif fault == "rate-limit-429":
        await _outcome(send, 429, "throttled", "Simulated rate limit", retry_after="1")
    elif fault == "malformed-json":
        await _send_bytes(send, 200, _MALFORMED_JSON)
    elif fault == "invalid-fhir":
        await _send_bytes(send, 200, _INVALID_FHIR)
    elif fault == "timeout":
        await _hang(receive, send)
    elif fault == "next-loop":
        await inner({**scope, NEXT_LOOP_SCOPE_KEY: True}, receive, send)
    elif fault == "reset":
        await _reset(inner, scope, receive, send)
    elif fault == "slow-drip":
        await _drip(inner, scope, receive, send)
    else:
        # "none", and "down" when the server has no connection gate: serve normally.
        await inner(scope, receive, send)


async def _hang(receive: Receive, send: Send) -> None:
    try:
        await asyncio.wait_for(_wait_for_disconnect(receive), TIMEOUT_HANG_SECONDS)
    except TimeoutError:
        await _outcome(send, 504, "timeout", "Simulated upstream timeout")


async def _reset(inner: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    captured = await _capture(inner, scope, receive)
    body = bytes(captured.body)
    # Promise the whole body, deliver part of it, then drop the connection.
    headers = _with_length(captured.headers, len(body))
    await send({"type": "http.response.start", "status": captured.status, "headers": headers})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    raise SimulatedReset("connection reset by the reset fault")


async def _drip(inner: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    captured = await _capture(inner, scope, receive)
    body = bytes(captured.body)
    headers = _with_length(captured.headers, len(body))
    await send({"type": "http.response.start", "status": captured.status, "headers": headers})
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        for start in range(0, len(body), DRIP_CHUNK_BYTES):
            chunk = body[start : start + DRIP_CHUNK_BYTES]
            last = start + DRIP_CHUNK_BYTES >= len(body)
            await send({"type": "http.response.body", "body": chunk, "more_body": not last})
            if last:
                return
            # Sleep between chunks, but stop at once if the client has gone.
            done, _ = await asyncio.wait({watcher}, timeout=DRIP_INTERVAL_SECONDS)
            if done:
                return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()
