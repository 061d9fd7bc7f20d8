"""The HTTP client every source is reached with: httpx's API on aiohttp's connection pool.

The adapters speak httpx (requests, auth flows, respx in their unit tests); what carries
a request to a source is :class:`SourceTransport`, an httpx transport over an
``aiohttp`` connector. Measured side by side (docs/performance.md sections 24 and 25),
httpcore's pool spent about three quarters of the client's CPU per request, checking
every pooled connection's expiry on every request, and it lost connections for good
when a waiting task was cancelled (encode/httpcore#1093), which the exchange had to work
around with a task of its own per request. aiohttp's pool gives a connection back or
closes it on every path, cancellation included, so a caller's cancellation simply
propagates (``tests/gateway/test_leaks.py`` proves no connection or slot is lost).

What the transport keeps of httpx's behaviour: its timeouts (connect, read, and the wait
for a pooled connection), its TLS verification (``httpx.create_ssl_context``: one context
for every source, see :func:`tls_context`), bodies
decompressed by httpx (aiohttp's own decompression is off, so the cap in
:func:`adapters.transport.exchange` counts decompressed bytes), no redirects, no cookies
and no proxy from the environment (sources are reached directly). Errors come out as
httpx's exception classes, with messages that name only the kind of failure: aiohttp's
own messages carry the URL, whose query may hold an identity number.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx
from yarl import URL

#: The request extension that carries an :class:`asyncio.Event` to set once the
#: request's head has been written to the connection.
SENT = "samlad.sent"
#: How long an idle connection is kept for the next request.
_KEEPALIVE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class PoolState:
    """What a client's connection pool holds now."""

    #: Connections carrying a request (or being opened for one).
    in_use: int
    #: Open connections kept for the next request.
    idle: int
    #: Requests waiting for a connection.
    waiting: int


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context every outgoing connection is verified with: the sources', and
    the gateway's own clients' (the issuers' keys, client registration, callbacks).
    httpx's (the CA bundle, host names checked), one for the process: each context
    parses the CA bundle into a copy of its own, about 0.8 MB, so a context per source
    made a gateway with 200 sources about 180 MB larger (docs/performance.md section
    27). Every connection is verified the same way, and a context is safe to share
    between connections and threads."""
    return httpx.create_ssl_context()


def source_client(
    *,
    timeout: float,
    connect_timeout: float,
    max_connections: int,
    auth: httpx.Auth | None = None,
) -> httpx.AsyncClient:
    """A client for one source: at most ``max_connections`` open at once (kept alive
    between requests), ``timeout`` seconds for each read and for a free connection,
    ``connect_timeout`` to open one. Must be used inside a running event loop's life
    and closed with ``aclose``."""
    return _SourceClient(
        auth=auth,
        timeout=httpx.Timeout(timeout, connect=min(timeout, connect_timeout)),
        transport=SourceTransport(max_connections),
        follow_redirects=False,
        trust_env=False,
    )


class _NoCookies(httpx.Cookies):
    """A cookie store that takes nothing and sends nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


class _SourceClient(httpx.AsyncClient):
    """httpx's client, keeping no cookies: nothing ties one person's requests to another's
    at the source (authentication is each request's own). httpx's own store would also
    parse every response's URL again for its jar, kept or not (about a fifth of the
    exchange's CPU, docs/performance.md section 25)."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._none = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._none

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise AttributeError("a source's client keeps no cookies")


async def _on_headers_sent(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    sent = context.trace_request_ctx
    if sent is not None:
        sent.set()


def _tracing() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(_on_headers_sent)
    trace.freeze()
    return trace


class SourceTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp connection pool of ``max_connections``.

    The aiohttp session is made on the first request, inside the event loop that uses
    it (a client may be built before its loop runs)."""

    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _opened(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the transport has been closed")
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                ssl=tls_context(),
                # As long as httpx kept one.
                keepalive_timeout=_KEEPALIVE_SECONDS,
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                trace_configs=[_tracing()],
            )
        return session

    @staticmethod
    def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout", {})
        connect, read, pool = given.get("connect"), given.get("read"), given.get("pool")
        # aiohttp's ``connect`` covers the wait for a free connection and opening one;
        # ``sock_connect`` opening one only; ``sock_read`` each read.
        whole = None if pool is None or connect is None else pool + connect
        return aiohttp.ClientTimeout(
            total=None, connect=whole, sock_connect=connect, sock_read=read
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._opened()
        body = await request.aread()
        try:
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(request),
                trace_request_ctx=request.extensions.get(SENT),
            )
        except _FAILURES as exc:
            failure = _translated(exc, request)
        else:
            return httpx.Response(
                response.status,
                headers=response.raw_headers,
                stream=_Body(response, request),
                request=request,
            )
        # Raised outside the handler, so that aiohttp's error (its message names the
        # URL) is not kept as this one's context.
        raise failure

    def pool_state(self) -> PoolState:
        """The connections of the pool in use and idle, and the requests waiting."""
        session = self._session
        if session is None or session.closed:
            return PoolState(in_use=0, idle=0, waiting=0)
        connector = session.connector
        # aiohttp keeps these private; read defensively (zero when a version renames them).
        acquired = getattr(connector, "_acquired", ())
        idle = getattr(connector, "_conns", {})
        waiters = getattr(connector, "_waiters", {})
        return PoolState(
            in_use=len(acquired),
            idle=sum(len(kept) for kept in idle.values()),
            waiting=sum(len(queued) for queued in waiters.values()),
        )

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _Body(httpx.AsyncByteStream):
    """A response's body as aiohttp reads it; closing it gives the connection back, or
    closes it when the body was not read to its end."""

    __slots__ = ("_request", "_response")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response: aiohttp.ClientResponse | None = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._response is None:
            raise httpx.StreamClosed
        content = self._response.content
        while True:
            try:
                chunk = await content.readany()
            except _FAILURES as exc:
                failure = _translated(exc, self._request)
                break
            if not chunk:
                return
            yield chunk
        raise failure  # outside the handler: see handle_async_request

    async def aclose(self) -> None:
        # Let go of aiohttp's response at once: httpx's response and its stream refer
        # to each other, a cycle that only the cyclic collector frees, and the gateway
        # runs it seldom (gateway.run.app.tune_garbage_collector).
        response, self._response = self._response, None
        if response is not None:
            response.release()


#: What aiohttp raises for a failed exchange (its read timeouts are asyncio's too).
_FAILURES = (aiohttp.ClientError, OSError, asyncio.TimeoutError)
_BROKEN_RESPONSE = (
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientResponseError,
    aiohttp.ClientPayloadError,
)


def _translated(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """httpx's exception for aiohttp's ``exc``, named by its kind only."""
    kind = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(kind, request=request)
    if isinstance(exc, asyncio.TimeoutError):
        return httpx.ReadTimeout(kind, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(kind, request=request)
    if isinstance(exc, _BROKEN_RESPONSE):
        return httpx.RemoteProtocolError(kind, request=request)
    return httpx.ReadError(kind, request=request)


def pool_state(client: httpx.AsyncClient) -> PoolState | None:
    """The state of ``client``'s connection pool; None when its transport is not a
    :class:`SourceTransport` (a mock transport, say)."""
    # httpx keeps a client's transport private.
    transport = getattr(client, "_transport", None)
    return transport.pool_state() if isinstance(transport, SourceTransport) else None
