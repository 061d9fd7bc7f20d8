"""One HTTP exchange with a source, shared by every dialect: send, check, read, translate.

Library errors are turned into :mod:`adapters.errors` here, where they enter, so each
adapter only interprets bodies. Bodies are streamed and capped (after decompression);
redirects are never followed (they could point anywhere).

Cancellation never reaches httpcore where it would break the connection pool. httpcore
(1.0.9) leaves a connection behind for good when a task is cancelled while it waits for
a pool lock or for its turn, or while it closes a finished response: a connection that
stays ``NEW`` or ``ACTIVE`` with no request, counted against ``max_connections`` for
ever, its socket in CLOSE-WAIT once the source hangs up (encode/httpcore#1093). Under
load, with deadlines cancelling calls, every slot of a pool was lost this way within
seconds, and the source then looked hung until a restart. So each exchange runs in its
own task, which the caller's cancellation does not cancel: the caller is let go at once,
and the exchange is stopped where stopping is safe. While it waits on the network
(connect, send, receive: httpcore then closes the connection on any exception,
cancellation included) it is cancelled, once; elsewhere it is stopped with an error at
the next step it begins (httpcore's trace hook), before it touches a connection's state.
Either way the connection is closed or given back to the pool within moments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpcore
import httpx

from adapters.errors import (
    SourceAuthError,
    SourceError,
    SourceProtocolError,
    SourceTimeout,
    SourceUnavailable,
)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; obsolete forms may lack a zone
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def raise_for_status(response: httpx.Response, what: str, readable: Container[int] = ()) -> None:
    """Translate an unwanted status; 2xx and the ``readable`` ones are left to the caller."""
    status = response.status_code
    if 200 <= status < 300 or status in readable:
        return
    message = f"{what}: HTTP {status}"
    if status in (401, 403):
        raise SourceAuthError(message)
    if status in (429, 503):
        raise SourceUnavailable(
            message, retry_after=parse_retry_after(response.headers.get("Retry-After"))
        )
    if status >= 500:
        raise SourceUnavailable(message)
    # 3xx lands here too: redirects are not followed.
    raise SourceProtocolError(message)


def _transport_problem(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "broken HTTP response"
    return "network error"


async def _read_capped(response: httpx.Response, what: str, limit: int) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise SourceProtocolError(f"{what}: response larger than {limit} bytes")
    buffer = bytearray()
    # Counted after decompression: a small gzip body must not expand past the limit.
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if len(buffer) > limit:
            raise SourceProtocolError(f"{what}: response larger than {limit} bytes")
    return bytes(buffer)


async def exchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    what: str,
    *,
    limit: int,
    readable: Container[int] = (),
    sent: asyncio.Event | None = None,
) -> tuple[int, bytes]:
    """Send ``request`` and return (status, body), or raise a :class:`SourceError`.

    ``what`` names the call in messages (source id and operation: never the query, a
    body or an identity number). ``sent`` is set once the request has been written to
    the connection, or the exchange has ended. Cancelling the caller lets it go at once;
    the exchange itself is stopped safely (see the module docstring).
    """
    wire = _Wire(request, sent)
    task = asyncio.create_task(_exchanged(client, request, what, limit, readable))
    wire.task = task
    task.add_done_callback(wire.ended)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if wire.abandon():
            # Cancelled on the network: it only closes its connection now, so it does
            # not outlive its caller. (Elsewhere it may wait for the pool; not waited for.)
            await asyncio.wait([task])
        raise


async def _exchanged(
    client: httpx.AsyncClient,
    request: httpx.Request,
    what: str,
    limit: int,
    readable: Container[int],
) -> tuple[int, bytes]:
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            raise_for_status(response, what, readable)
            return response.status_code, await _read_capped(response, what, limit)
        finally:
            await response.aclose()
    except SourceError:
        raise
    except _Abandoned as exc:
        raise SourceTimeout(f"{what}: given up") from exc
    except httpx.TimeoutException as exc:
        raise SourceTimeout(f"{what}: timed out") from exc
    except httpx.TransportError as exc:
        raise SourceUnavailable(f"{what}: {_transport_problem(exc)}") from exc
    except httpx.HTTPError as exc:  # e.g. a broken content-encoding
        raise SourceProtocolError(f"{what}: unreadable response") from exc


class _Abandoned(Exception):
    """Raised from the trace hook into an exchange whose caller has gone."""


#: httpcore's steps during which the task waits on the network, inside httpcore's own
#: clean-up: cancelling it there closes the connection properly. Outside them (waiting
#: for the pool or one of its locks, closing a response) cancellation leaks the connection.
_ON_THE_WIRE = frozenset(
    {
        "connection.connect_tcp",
        "http11.send_request_headers",
        "http11.send_request_body",
        "http11.receive_response_headers",
        "http11.receive_response_body",
        "http2.send_request_headers",
        "http2.send_request_body",
        "http2.receive_response_headers",
        "http2.receive_response_body",
    }
)
#: The steps after which the request has been written to the connection.
_REQUEST_SENT = frozenset({"http11.send_request_body", "http2.send_request_body"})


@dataclass(eq=False, slots=True)
class _Wire:
    """One exchange's task, where httpcore has got to in it, and how to stop it."""

    request: httpx.Request
    sent: asyncio.Event | None
    task: asyncio.Task[tuple[int, bytes]] | None = None
    #: The httpcore step under way that is safe to cancel, if any.
    on_the_wire: str | None = None
    abandoned: bool = False

    def __post_init__(self) -> None:
        self.request.extensions["trace"] = self._trace

    async def _trace(self, event: str, info: dict[str, object]) -> None:
        step, _, phase = event.rpartition(".")
        if phase == "started" and step in _ON_THE_WIRE:
            if self.abandoned:
                # Before the step touches the connection: httpcore closes it cleanly.
                raise _Abandoned
            self.on_the_wire = step
        elif step == self.on_the_wire:  # complete or failed
            self.on_the_wire = None
            if phase == "complete" and step in _REQUEST_SENT and self.sent is not None:
                self.sent.set()

    def abandon(self) -> bool:
        """The caller has gone: stop the exchange where that is safe. True when it was
        cancelled at once (it was waiting on the network)."""
        if self.abandoned or self.task is None or self.task.done():
            return False
        self.abandoned = True
        _abandoned.add(self.task)
        if self.on_the_wire is None:
            return False
        self.task.cancel()
        return True

    def ended(self, task: asyncio.Task[tuple[int, bytes]]) -> None:
        _abandoned.discard(task)
        # The request's trace hook holds this wire, and the wire the task, which holds
        # the body it read: a reference cycle that only the cyclic collector frees, and
        # the gateway runs it seldom (gateway.run.app.tune_garbage_collector), so a
        # large record's pages stayed in memory until the answer was complete. Broken
        # here: the body goes as soon as its caller lets it go.
        self.task = None
        self.request.extensions.pop("trace", None)
        if self.sent is not None:
            self.sent.set()
        if not task.cancelled():
            task.exception()  # seen: nobody awaits an abandoned exchange's failure


#: Abandoned exchanges still finishing; asyncio keeps only weak references to tasks.
_abandoned: set[asyncio.Task[tuple[int, bytes]]] = set()


def exchanges_finishing() -> int:
    """How many abandoned exchanges of the running event loop are still finishing."""
    loop = asyncio.get_running_loop()
    for task in [t for t in _abandoned if t.get_loop().is_closed()]:
        _abandoned.discard(task)  # its loop is gone: it never will
    return sum(1 for task in _abandoned if task.get_loop() is loop)


@dataclass(frozen=True, slots=True)
class PoolState:
    """What a client's connection pool holds now."""

    #: Connections carrying a request (or being opened for one).
    in_use: int
    #: Open connections kept for the next request.
    idle: int
    #: Requests waiting for a connection.
    waiting: int


def pool_state(client: httpx.AsyncClient) -> PoolState | None:
    """The state of ``client``'s connection pool; None when its transport has none
    (a mock transport, say)."""
    # httpx keeps its transport and the transport its httpcore pool private; the pool's
    # connections and their states are httpcore's public interface.
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if not isinstance(pool, httpcore.AsyncConnectionPool):
        return None
    connections = [c for c in pool.connections if not c.is_closed()]
    idle = sum(1 for c in connections if c.is_idle())
    requests = list(getattr(pool, "_requests", ()))
    waiting = sum(1 for r in requests if r.is_queued())
    return PoolState(in_use=len(connections) - idle, idle=idle, waiting=waiting)
