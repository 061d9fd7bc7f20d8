"""A search's next links: resolved against the page's own URL and kept within the
source's base URL (its origin and path), so that a broken or hostile source cannot send
the gateway, with the source's credentials, anywhere else."""

from __future__ import annotations

from urllib.parse import unquote

import httpx

from adapters.errors import SourceProtocolError

_DEFAULT_PORTS = {"http": 80, "https": 443}


def checked_next(base: httpx.URL, current: httpx.URL, link: str, what: str) -> httpx.URL:
    """``link`` resolved against ``current``; one that is malformed or leaves ``base`` is
    a :class:`SourceProtocolError` (``what``: the search, for its message)."""
    try:
        url = current.join(link)
    except httpx.InvalidURL as exc:
        raise SourceProtocolError(f"{what}: malformed next link") from exc
    same_origin = (
        url.scheme == base.scheme
        and url.host == base.host
        and _port(url) == _port(base)
        and not url.userinfo
    )
    # Encoded dot segments ("%2e%2e") survive URL joining but not every server's decoder.
    segments = unquote(url.path).split("/")
    escapes = "." in segments or ".." in segments
    within = url.path.startswith(f"{base.path.rstrip('/')}/")
    if not same_origin or escapes or not within:
        raise SourceProtocolError(f"{what}: next link leaves the source's base URL")
    return url


def without_fragment(url: httpx.URL) -> str:
    """The URL as a key for a next-link loop, without its fragment."""
    # A literal "#" can only start the fragment (one in a query is encoded): cheaper than
    # rebuilding the URL without it, on every page.
    return str(url).partition("#")[0]


def _port(url: httpx.URL) -> int | None:
    return url.port or _DEFAULT_PORTS.get(url.scheme)
