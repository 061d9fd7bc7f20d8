"""Paging through a search: opaque, sealed cursors and the Bundle's paging links.

The gateway keeps no result sets: every page re-reads the live record (through the
RecordReader, so consent is decided again for every page) and re-runs the search. A
cursor therefore carries the whole search, sealed so the client can neither read nor
change it:

    token = base64url( gateway.envelope: 0x01 | nonce (12 bytes) | AES-256-GCM(payload) )

* **Sealed, not just signed.** AES-GCM authenticates the payload like an HMAC would,
  and also hides it: the search values (a lab code, a date range) and the opaque
  patient id say something about a person and must not be readable in browser history,
  proxy logs or a Referer header. The payload is padded to a multiple of 64 bytes, so
  the token's length hardly reveals the values' lengths either.
* **Bound to one principal.** ``bound_to`` (an opaque fingerprint of who asked, chosen
  by the gateway) is the AEAD's associated data: it is not in the token, and a cursor
  presented by anyone else fails to open exactly like a forged one.
* **Its own key.** The codec derives its AES key from the key it is given with
  :func:`gateway.keys.derive_key` (HKDF-SHA256, ``info = samlad paging cursor v1``), so
  the gateway's ``id_key`` is never used directly for a second purpose.
* **Short-lived.** Each cursor expires ``ttl`` seconds (default 30 minutes) after it
  was made; each page issues fresh cursors, so a client reading steadily never
  expires.
* **The same results, or none.** ``snapshot`` is a hash of the ordered ids of the
  first page's whole result set. If a later page finds a different set (a source that
  answered before timed out, a new block, new data), offsets would skip or repeat
  entries silently; for a health record that is worse than an error, so
  :func:`check_snapshot` raises :class:`ChangedResults`, a 410 Gone, as FHIR servers
  commonly answer for paging that is no longer valid. The client starts the search
  again.

Errors: :class:`InvalidCursor` (400) for anything that does not open: tampering,
truncation, another key, another principal; :class:`ExpiredCursor` (410) for an old
cursor; :class:`ChangedResults` (410) for a changed result set. Both are gateway errors,
so the one error handler renders them as OperationOutcomes; neither quotes the token.

Links have the form ``{base}?_getpages={token}`` (the HAPI FHIR convention): the cursor
names its search, so one route on the FHIR base serves the pages of every type search
and of ``$everything`` alike. ``self`` of the first page is the search's own URL.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import orjson

from gateway.envelope import Envelope, Unopened
from gateway.errors import BadRequest, GatewayError
from gateway.keys import Purpose, derive_key

#: The query parameter carrying a cursor on the FHIR base URL.
PAGE_PARAM = "_getpages"
#: Default lifetime of a cursor, in seconds.
DEFAULT_TTL = 1800.0
#: Longest token accepted; longer ones are refused before any decoding work.
MAX_TOKEN_LENGTH = 4096

_PAD_TO = 64
_AAD_PREFIX = b"samlad paging cursor v1\x00"
_TOKEN_TEXT = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)

T = TypeVar("T")


class InvalidCursor(BadRequest):
    """A cursor that does not open: altered, truncated, another key or another principal."""

    def __init__(self, message: str = "the paging cursor is not valid") -> None:
        super().__init__(message)


class ExpiredCursor(GatewayError):
    """A cursor older than its lifetime (410 Gone): start the search again."""

    status, code = 410, "expired"

    def __init__(self, message: str = "the paging cursor has expired; repeat the search") -> None:
        super().__init__(message)


class ChangedResults(ExpiredCursor):
    """The search's results are no longer those the cursor was made for (410 Gone)."""

    def __init__(
        self, message: str = "the search results have changed since the first page; repeat it"
    ) -> None:
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class PageState:
    """Everything needed to serve one page of a search again."""

    #: Which search: a resource type (``Observation``) or an operation
    #: (``Patient/$everything``); the gateway routes on it.
    search: str
    #: The search's normalised parameters, including ``patient`` (an opaque id, never an
    #: identity number) and excluding ``_count``: ``SearchSpec.params`` fits.
    params: tuple[tuple[str, str], ...]
    offset: int
    count: int
    #: :func:`snapshot_of` the whole ordered result set when the search was first run.
    snapshot: str
    #: Opaque fingerprint of the principal the cursor is for; never written to the token.
    bound_to: str

    def at(self, offset: int) -> PageState:
        """The same search at another offset."""
        return replace(self, offset=offset)


class SnapshotDigest:
    """:func:`snapshot_of` taken one id at a time, for results that are streamed."""

    __slots__ = ("_digest",)

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def add(self, resource_id: str) -> None:
        # Ids cannot contain a newline, so joining with one is unambiguous.
        self._digest.update(resource_id.encode() + b"\n")

    def value(self) -> str:
        return _b64encode(self._digest.digest()[:16])


def snapshot_of(ids: Iterable[str]) -> str:
    """A short fingerprint of an ordered result set (its resource ids, in order): the
    same as :class:`SnapshotDigest` given the ids one by one, hashed in one go."""
    joined = "".join(f"{resource_id}\n" for resource_id in ids)
    return _b64encode(hashlib.sha256(joined.encode()).digest()[:16])


def check_snapshot(state: PageState, snapshot: str) -> None:
    """Raise :class:`ChangedResults` unless ``snapshot`` (:func:`snapshot_of` the results
    read now) is that of the results ``state`` was made for."""
    if snapshot != state.snapshot:
        raise ChangedResults()


class PageCursorCodec:
    """Seals :class:`PageState` into opaque tokens and opens them again.

    ``key`` is the gateway's secret (at least 16 bytes); ``clock`` returns seconds since
    the epoch and is injectable for tests.
    """

    def __init__(
        self,
        key: bytes,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(key) < 16:
            raise ValueError("the paging key must be at least 16 bytes")
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        self._envelope = Envelope(derive_key(key, Purpose.PAGING_CURSOR))
        self._ttl = ttl
        self._clock = clock

    def encode(self, state: PageState) -> str:
        """A token for ``state``, valid for ``ttl`` seconds and only for ``state.bound_to``."""
        payload: dict[str, Any] = {
            "s": state.search,
            "p": [list(pair) for pair in state.params],
            "o": state.offset,
            "c": state.count,
            "h": state.snapshot,
            "x": self._clock() + self._ttl,
        }
        plain = orjson.dumps(payload)
        # Trailing spaces are valid JSON whitespace; they blur the values' lengths.
        plain += b" " * (-len(plain) % _PAD_TO)
        return _b64encode(self._envelope.seal(plain, _aad(state.bound_to)))

    def decode(self, token: str, *, bound_to: str) -> PageState:
        """The state sealed in ``token``, if it was made by this key for ``bound_to``.

        Raises :class:`InvalidCursor` for anything altered, truncated, sealed with another
        key or for another principal, and :class:`ExpiredCursor` once it is too old.
        """
        raw = _b64decode(token)
        if raw is None:
            raise InvalidCursor()
        try:
            plain = self._envelope.open(raw, _aad(bound_to))
        except Unopened as exc:
            raise InvalidCursor() from exc
        opened = _state_from(plain, bound_to)
        if opened is None:
            # Authentic but not a state: only a key shared with other code could do this.
            raise InvalidCursor()
        expires, state = opened
        if self._clock() >= expires:
            raise ExpiredCursor()
        return state


def _aad(bound_to: str) -> bytes:
    return _AAD_PREFIX + bound_to.encode()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(token: str) -> bytes | None:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    if not _TOKEN_TEXT.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        return None
    # Unused low bits of the last character decode the same; demand the one canonical
    # spelling so that changing any character of a token changes what it says.
    return raw if _b64encode(raw) == token else None


def _state_from(plain: bytes, bound_to: str) -> tuple[float, PageState] | None:
    try:
        data = orjson.loads(plain)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    search, params, offset, count = data.get("s"), data.get("p"), data.get("o"), data.get("c")
    snapshot, expires = data.get("h"), data.get("x")
    if not (
        isinstance(search, str)
        and isinstance(params, list)
        and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
            for p in params
        )
        and type(offset) is int
        and offset >= 0
        and type(count) is int
        and count > 0
        and isinstance(snapshot, str)
        and isinstance(expires, int | float)
        and math.isfinite(expires)
    ):
        return None
    pairs = tuple((str(name), str(value)) for name, value in params)
    return float(expires), PageState(search, pairs, offset, count, snapshot, bound_to)


def page(items: Sequence[T], offset: int, count: int) -> tuple[list[T], int | None]:
    """The page of ``items`` at ``offset`` of at most ``count``, and the next offset.

    The next offset is None on the last page. An offset past the end gives an empty
    page (the results shrank; :func:`check_snapshot` normally catches that first).
    """
    if offset < 0 or count < 1:
        raise ValueError("offset must be >= 0 and count >= 1")
    end = offset + count
    return list(items[offset:end]), (end if end < len(items) else None)


def page_url(base_url: str, token: str) -> str:
    """The URL serving the page a token names (tokens are URL-safe as they are)."""
    return f"{base_url}?{PAGE_PARAM}={token}"


def page_links(
    base_url: str,
    state: PageState,
    codec: PageCursorCodec,
    *,
    total: int,
    self_url: str | None = None,
) -> list[dict[str, str]]:
    """Bundle.link entries for the page ``state`` names in a result set of ``total``.

    ``self`` is ``self_url`` when given (the search's own URL, for the first page),
    otherwise this page's cursor; ``first`` and ``last`` always; ``previous`` and
    ``next`` when there are such pages. Each cursor is freshly sealed.
    """

    def link(relation: str, offset: int) -> dict[str, str]:
        return {"relation": relation, "url": page_url(base_url, codec.encode(state.at(offset)))}

    count = state.count
    last = max(0, (total - 1) // count * count)
    links = [
        {"relation": "self", "url": self_url} if self_url else link("self", state.offset),
        link("first", 0),
    ]
    if state.offset > 0:
        links.append(link("previous", max(0, min(state.offset - count, last))))
    if state.offset + count < total:
        links.append(link("next", state.offset + count))
    links.append(link("last", last))
    return links
