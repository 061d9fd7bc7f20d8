"""Reading a source's searchset Bundle: its entries, their search modes, the outcome
issues it reports, its next link and total. Anything malformed is a protocol error;
upstream text that may reach a log is kept only when it looks like a FHIR code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from adapters.errors import SourceProtocolError

# Upstream text that may reach our logs must look like a FHIR code, nothing freer.
_SAFE_CODE = re.compile(r"^[a-z][a-z-]{0,39}$")


def searchset(body: bytes, what: str) -> dict[str, Any]:
    """The searchset Bundle in ``body``, or SourceProtocolError."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SourceProtocolError(f"{what}: response is not valid JSON") from exc
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise SourceProtocolError(f"{what}: response is not a Bundle")
    if data.get("type") != "searchset":
        raise SourceProtocolError(f"{what}: Bundle is not a searchset")
    if not isinstance(data.get("entry", []), list):
        raise SourceProtocolError(f"{what}: malformed Bundle")
    if not isinstance(data.get("link", []), list):
        raise SourceProtocolError(f"{what}: malformed Bundle")
    return data


def entries(bundle: dict[str, Any], what: str) -> Iterator[dict[str, Any]]:
    """The Bundle's entries; one that is not an object is a protocol error."""
    for entry in bundle.get("entry", []):
        if not isinstance(entry, dict):
            raise SourceProtocolError(f"{what}: malformed Bundle entry")
        yield entry


def search_mode(entry: dict[str, Any]) -> str | None:
    """The entry's ``search.mode`` (``match``, ``include``, ``outcome``), None if absent."""
    search = entry.get("search")
    if isinstance(search, dict):
        mode = search.get("mode")
        return mode if isinstance(mode, str) else None
    return None


def outcome_issues(resource: Any) -> list[tuple[str, str]]:
    """``(severity, code)`` of each issue of an OperationOutcome entry; diagnostics dropped."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "OperationOutcome":
        return []
    issues = resource.get("issue")
    if not isinstance(issues, list):
        return []
    return [
        (_safe_code(issue.get("severity")), _safe_code(issue.get("code")))
        for issue in issues
        if isinstance(issue, dict)
    ]


def body_issues(body: bytes) -> list[tuple[str, str]]:
    """:func:`outcome_issues` of a response body that may be an OperationOutcome (none if
    it is not one, or not JSON)."""
    try:
        return outcome_issues(orjson.loads(body))
    except orjson.JSONDecodeError:
        return []


def _safe_code(value: Any) -> str:
    return value if isinstance(value, str) and _SAFE_CODE.match(value) else "?"


def next_link(bundle: dict[str, Any], what: str) -> str | None:
    """The URL of the Bundle's ``next`` link, None on the last page."""
    for link in bundle.get("link", []):
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url:
                return url
            raise SourceProtocolError(f"{what}: next link without a URL")
    return None


def total(bundle: dict[str, Any]) -> int:
    """The Bundle's ``total``, 0 when it has none (or not a number)."""
    value = bundle.get("total")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
