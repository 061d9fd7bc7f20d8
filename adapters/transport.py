"""One HTTP exchange with a source, shared by every dialect: send, check, read, translate.

Library errors are turned into :mod:`adapters.errors` here, where they enter, so each
adapter only interprets bodies. Bodies are streamed and capped (after decompression);
redirects are never followed (they could point anywhere). The client a source is reached
with is :func:`adapters.client.source_client`; cancelling an exchange there closes or
gives back its connection on every path, so a caller's cancellation simply propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Container
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from adapters.client import SENT
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
    body or an identity number). ``sent`` is set once the request's head has been
    written to the connection (by a :class:`adapters.client.SourceTransport`; other
    transports do not say), or the exchange has ended.
    """
    if sent is not None:
        request.extensions[SENT] = sent
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            raise_for_status(response, what, readable)
            return response.status_code, await _read_capped(response, what, limit)
        finally:
            await response.aclose()
    except SourceError:
        raise
    except httpx.TimeoutException as exc:
        raise SourceTimeout(f"{what}: timed out") from exc
    except httpx.TransportError as exc:
        raise SourceUnavailable(f"{what}: {_transport_problem(exc)}") from exc
    except httpx.HTTPError as exc:  # e.g. a broken content-encoding
        raise SourceProtocolError(f"{what}: unreadable response") from exc
    finally:
        if sent is not None:
            sent.set()
