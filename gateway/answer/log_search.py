"""A search of the patient's access log (``AuditEvent?patient=``): its parameters, and
which entries match in which order.

``patient`` is required; ``date`` (repeatable, FHIR date prefixes) filters on when an
entry was recorded; ``_sort`` is ``-date`` (newest first, the default) or ``date``;
``_count`` pages (at most :data:`MAX_COUNT`, 0 or ``_summary=count`` for the total
only); ``_total`` is accepted (the total is always exact). Unknown parameters are named
in :attr:`LogSearch.unsupported`, or refused with ``strict``. Errors name the
parameter, never its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.answer.search.dates import DateCriterion, parse_date_value
from gateway.answer.search.match import date_matches
from gateway.answer.search.parse import DEFAULT_COUNT, MAX_COUNT, safe_name
from gateway.errors import BadRequest

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONCE = frozenset({"_count", "_sort", "_summary", "_total"})
_IGNORED = frozenset({"_format", "_pretty"})


@dataclass(frozen=True, slots=True)
class LogSearch:
    """A parsed search of one patient's access log."""

    patient: str
    #: Each ``date`` occurrence's values (OR-ed); the occurrences are AND-ed.
    dates: tuple[tuple[DateCriterion, ...], ...] = ()
    oldest_first: bool = False
    count: int = DEFAULT_COUNT
    #: Only the total is wanted (``_summary=count`` or ``_count=0``).
    count_only: bool = False
    #: Names (never values) of the parameters ignored as unsupported.
    unsupported: tuple[str, ...] = ()
    #: The accepted parameters minus ``_count``: enough to parse it again on a later page.
    params: tuple[tuple[str, str], ...] = ()


def parse_log_search(
    params: Sequence[tuple[str, str]], *, strict: bool, now: datetime | None = None
) -> LogSearch:
    """Parse an access-log search; ``now`` anchors the ``ap`` date prefix."""
    clock = now or datetime.now(UTC)
    patient: str | None = None
    dates: list[tuple[DateCriterion, ...]] = []
    kept: list[tuple[str, str]] = []
    unsupported: list[str] = []
    seen: set[str] = set()
    oldest_first, count, count_only = False, DEFAULT_COUNT, False
    for name, value in params:
        if name in _IGNORED or value == "":
            continue
        if name in _ONCE:
            if name in seen:
                raise BadRequest(f"{name} may be given only once")
            seen.add(name)
        if name == "patient":
            named = value.removeprefix("Patient/")
            if not named or "/" in named or "," in named or len(named) > 64:
                raise BadRequest("patient must be a Patient id")
            if patient is not None and named != patient:
                raise BadRequest("patient may name only one Patient")
            patient = named
        elif name == "date":
            dates.append(tuple(parse_date_value(name, v, clock) for v in value.split(",")))
        elif name == "_sort":
            if value not in ("date", "-date"):
                raise BadRequest("_sort must be date or -date")
            oldest_first = value == "date"
        elif name == "_count":
            if not value.isascii() or not value.isdigit() or len(value) > 9:
                raise BadRequest("_count must be a whole number (0 asks for the total only)")
            count = min(int(value), MAX_COUNT) or DEFAULT_COUNT
            count_only = count_only or int(value) == 0
            continue
        elif name == "_summary":
            if value not in ("count", "false"):
                raise BadRequest("_summary must be count or false for the access log")
            count_only = count_only or value == "count"
        elif name == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise BadRequest("_total must be one of none, estimate, accurate")
        else:
            if strict:
                raise BadRequest(f"unsupported search parameter: {safe_name(name)}")
            unsupported.append(safe_name(name))
            continue
        kept.append((name, value))
    if patient is None:
        raise BadRequest("the patient parameter is required")
    return LogSearch(
        patient,
        tuple(dates),
        oldest_first,
        count,
        count_only,
        tuple(dict.fromkeys(unsupported)),
        tuple(kept),
    )


def select(search: LogSearch, keys: Sequence[tuple[int, datetime]]) -> list[int]:
    """The seqs of the entries (their (seq, recorded_at) keys, given newest first) that
    match ``search``, in its order."""
    matched = [seq for seq, recorded in keys if _in_dates(search, recorded)]
    matched.sort(reverse=not search.oldest_first)
    return matched


def _in_dates(search: LogSearch, recorded: datetime) -> bool:
    if not search.dates:
        return True
    at = (recorded.astimezone(UTC) - _EPOCH) // _MICROSECOND
    return all(any(date_matches(c, at, at + 1) for c in values) for values in search.dates)


_MICROSECOND = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH
