"""Date search values: an optional prefix (eq, lt, ge, ...) and a date or dateTime at its
own precision, read as a range of UTC microseconds.

Dates follow FHIR's precision rules: ``2026-05`` is the whole month, and a value without
an offset is Swedish local time (Europe/Stockholm), as the gateway normalises it. Every
value, in a request or in a resource, is compared as a half-open range [lo, hi) of UTC
microseconds; what each prefix means for two such ranges is in
:mod:`gateway.answer.search.match`. The dates and dateTimes themselves are read by
:mod:`fhir_profiles.datetimes`; the prefixes, precision and ranges are this module's.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fhir_profiles.datetimes import STOCKHOLM, parse_date_span, parse_datetime
from gateway.errors import BadRequest

_DATE_PREFIXES = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "sa", "eb", "ap"})
_STOCKHOLM = ZoneInfo(STOCKHOLM)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# The shapes a date search value may take; the groups that matched give its precision.
# Stricter than datetime.fromisoformat (no "20260520", no space for "T"), so it decides
# what is a date here; fhir_profiles.datetimes then reads the date or dateTime.
_DATE_TEXT = re.compile(
    r"(?P<y>[0-9]{4})(?:-(?P<mo>[0-9]{2})(?:-(?P<d>[0-9]{2})"
    r"(?:T(?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]{1,9}))?)?"
    r"(?P<z>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class DateCriterion:
    """One prefixed date value, as the half-open range [lo, hi) of UTC microseconds."""

    prefix: str
    lo: int
    hi: int


def parse_date_value(name: str, text: str, now: datetime) -> DateCriterion:
    """One value of the date parameter ``name``; ``now`` anchors the ``ap`` prefix.

    Raises :class:`BadRequest` naming the parameter, never the value.
    """
    prefix = "eq"
    if text[:2].isalpha():
        prefix, text = text[:2], text[2:]
        if prefix not in _DATE_PREFIXES:
            raise BadRequest(f"{name} has an unknown prefix (use eq ne lt le gt ge sa eb ap)")
    # An unencoded "+" in a query string arrives as a space: "...T10:00:00 02:00".
    if len(text) > 6 and text[-6] == " ":
        text = text[:-6] + "+" + text[-5:]
    span = date_span(text)
    if span is None:
        raise BadRequest(f"{name} must be a FHIR date or dateTime")
    lo, hi = span
    if prefix == "ap":
        # FHIR suggests about 10% of the distance from now; at least the value's own precision.
        now_us = (now - _EPOCH) // _MICROSECOND
        slack = abs(now_us - (lo + hi) // 2) // 10
        lo, hi = lo - slack, hi + slack
    return DateCriterion(prefix, lo, hi)


@functools.lru_cache(maxsize=65_536)
def date_span(text: str) -> tuple[int, int] | None:
    """``text`` as [lo, hi) in UTC microseconds at its own precision; None if no date.

    Cached: a record repeats the same instants, and requests repeat the same records.
    """
    match = _DATE_TEXT.fullmatch(text)
    if match is None:
        return None
    try:
        if match["h"] is None:
            first, after = parse_date_span(text)
            # The local midnights: a local day is 23 or 25 hours at the DST changes.
            start = datetime.combine(first, time(), _STOCKHOLM)
            end = datetime.combine(after, time(), _STOCKHOLM)
        else:
            start = parse_datetime(text)
            if start.tzinfo is None:
                start = start.replace(tzinfo=_STOCKHOLM)
            end = start + _precision(match["s"], match["f"])
    except (ValueError, OverflowError):
        return None
    return (start - _EPOCH) // _MICROSECOND, (end - _EPOCH) // _MICROSECOND


def _precision(seconds: str | None, fraction: str | None) -> timedelta:
    """How long a dateTime written to the minute, the second or a fraction of it lasts."""
    if seconds is None:
        return timedelta(minutes=1)
    if fraction is None:
        return timedelta(seconds=1)
    return timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
