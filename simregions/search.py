"""FHIR search over a region's store: parameters in, one searchset Bundle page out.

Behaves like the real servers the gateway meets: unknown parameters are ignored and reported
in an OperationOutcome entry (``search.mode = outcome``); ``_count`` is capped at the region's
page size; ``next`` links are absolute and carry an opaque cursor under the region's own
parameter name. Pages are assembled from each resource's pre-serialised bytes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from urllib.parse import urlencode

import orjson

from simregions.fhirhttp import operation_outcome
from simregions.regions import RegionSpec
from simregions.store import SEARCH_PARAMS, StoredResource

#: Parameters every search accepts without comment (_format is honoured by answering JSON).
_QUIET_PARAMS = frozenset({"_format", "_pretty"})


class SearchError(Exception):
    """A search request the server refuses (400); the message is safe to show."""

    def __init__(self, diagnostics: str, code: str = "invalid") -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.code = code


@dataclass(frozen=True)
class SearchRequest:
    """One search: the type, its parameters (query and form), and where it was asked."""

    resource_type: str
    params: Sequence[tuple[str, str]]
    base_url: str
    self_url: str
    next_loop: bool = False


def encode_cursor(offset: int) -> str:
    """The opaque cursor for the page starting at ``offset``."""
    return base64.urlsafe_b64encode(f"page:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The offset a cursor stands for; SearchError if it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        offset = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise SearchError("invalid paging cursor") from exc
    if prefix != "page" or offset < 0:
        raise SearchError("invalid paging cursor")
    return offset


def _patient_id(value: str) -> str | None:
    """The Patient id a reference parameter names (``id``, ``Patient/id`` or a full URL)."""
    parts = value.rstrip("/").split("/")
    if len(parts) == 1:
        return parts[0]
    if parts[-2] == "Patient":
        return parts[-1]
    return None


def _parse_instant(text: str) -> tuple[datetime, bool]:
    """Parse a FHIR date or dateTime; returns (moment, is_whole_day). Naive means UTC."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC), True
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise SearchError("invalid _lastUpdated value") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment, False


def _date_predicate(value: str) -> Callable[[datetime], bool]:
    prefix, text = "eq", value
    if value[:2] in ("eq", "ne", "gt", "ge", "lt", "le"):
        prefix, text = value[:2], value[2:]
    moment, whole_day = _parse_instant(text)
    # A bare date means the whole day: [moment, end).
    end = moment + timedelta(days=1) if whole_day else moment
    if prefix == "gt":
        return lambda t: t >= end if whole_day else t > moment
    if prefix == "ge":
        return lambda t: t >= moment
    if prefix == "lt":
        return lambda t: t < moment
    if prefix == "le":
        return lambda t: t < end if whole_day else t <= moment
    if prefix == "ne":
        return lambda t: not (moment <= t < end) if whole_day else t != moment
    return lambda t: moment <= t < end if whole_day else t == moment


def _last_updated_filter(
    predicate: Callable[[datetime], bool],
) -> Callable[[StoredResource], bool]:
    return lambda resource: predicate(resource.last_updated)


def _token_predicate(name: str, value: str) -> Callable[[StoredResource], bool]:
    wanted = [item for item in value.split(",") if item]
    exact = frozenset(item for item in wanted if not item.endswith("|"))
    systems = tuple(item for item in wanted if item.endswith("|"))

    def matches(resource: StoredResource) -> bool:
        tokens = resource.tokens.get(name, frozenset())
        if exact & tokens:
            return True
        return any(token.startswith(systems) for token in tokens) if systems else False

    return matches


class SearchedStore(Protocol):
    """What a search asks of a region's store (:class:`RegionStore`, or one with what
    was written to the region on top)."""

    @property
    def region(self) -> RegionSpec: ...

    def candidates(self, resource_type: str, patient_id: str | None) -> list[StoredResource]: ...


def run_search(store: SearchedStore, request: SearchRequest) -> bytes:
    """Answer ``request`` with one searchset Bundle page, as JSON bytes."""
    region = store.region
    supported = SEARCH_PARAMS[request.resource_type]
    count = region.page_size
    offset = 0
    kept: list[tuple[str, str]] = []
    unknown: list[str] = []
    patient_sets: list[set[str | None]] = []
    resource_filters: list[Callable[[StoredResource], bool]] = []
    for name, value in request.params:
        if name == "_count":
            try:
                count = min(int(value), region.page_size)
            except ValueError as exc:
                raise SearchError("_count must be a whole number") from exc
            if count < 0:
                raise SearchError("_count must not be negative")
            continue
        if name == region.page_cursor_param:
            offset = decode_cursor(value)
            continue
        if name in _QUIET_PARAMS:
            continue
        kind = supported.get(name)
        if kind is None:
            unknown.append(name)
        elif kind == "reference":
            patient_sets.append({_patient_id(item) for item in value.split(",") if item})
        elif kind == "date":
            resource_filters.append(_last_updated_filter(_date_predicate(value)))
        else:
            resource_filters.append(_token_predicate(name, value))
        kept.append((name, value))

    if patient_sets:
        patients = set.intersection(*patient_sets)
        candidates = [
            resource
            for patient in sorted(p for p in patients if p is not None)
            for resource in store.candidates(request.resource_type, patient)
        ]
    else:
        candidates = store.candidates(request.resource_type, None)
    matches = [r for r in candidates if all(check(r) for check in resource_filters)]

    total = len(matches)
    page = matches[offset : offset + count] if count else []
    links = [{"relation": "self", "url": request.self_url}]
    if request.next_loop:
        # The fault mode: a next link that leads back to this very page, forever.
        links.append({"relation": "next", "url": request.self_url})
    elif count and offset + count < total:
        cursor = encode_cursor(offset + count)
        query = [*kept, ("_count", str(count)), (region.page_cursor_param, cursor)]
        links.append(
            {
                "relation": "next",
                "url": f"{request.base_url}/{request.resource_type}?{urlencode(query)}",
            }
        )
    head = orjson.dumps(
        {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links}
    )
    entries = [_entry(request.base_url, resource) for resource in page]
    if unknown:
        names = ", ".join(sorted(set(unknown)))
        outcome = operation_outcome(
            "not-supported",
            f"Unknown search parameter(s) ignored for {request.resource_type}: {names}",
            severity="warning",
        )
        entries.append(orjson.dumps({"resource": outcome, "search": {"mode": "outcome"}}))
    if not entries:
        return head
    return b"".join((head[:-1], b',"entry":[', b",".join(entries), b"]}"))


def _entry(base_url: str, resource: StoredResource) -> bytes:
    full_url = orjson.dumps(f"{base_url}/{resource.resource_type}/{resource.id}")
    return b"".join(
        (b'{"fullUrl":', full_url, b',"resource":', resource.body, b',"search":{"mode":"match"}}')
    )
