"""Date search values: an optional prefix (eq, lt, ge, ...) and a date or dateTime at its
own precision, read as a range of UTC microseconds.

Dates follow FHIR's precision rules: ``2026-05`` is the whole month, and a value without
an offset is Swedish local time (Europe/Stockholm), as the gateway normalises it. Every
value, in a request or in a resource, is compared as a half-open range [lo, hi) of UTC
microseconds; what each prefix means for two such ranges is in
:mod:`gateway.answer.search.match`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from gateway.errors import BadRequest

_DATE_PREFIXES = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "sa", "eb", "ap"})
_STOCKHOLM = ZoneInfo("Europe/Stockholm")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

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
    year, month, day, hour, minute, second, fraction, zone = match.group(
        "y", "mo", "d", "h", "mi", "s", "f", "z"
    )
    tz: ZoneInfo | timezone = _STOCKHOLM
    if zone == "Z":
        tz = UTC
    elif zone:
        sign = -1 if zone[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        if month is None:
            start = datetime(int(year), 1, 1, tzinfo=tz)
            end = datetime(int(year) + 1, 1, 1, tzinfo=tz)
        elif day is None:
            y, m = int(year), int(month)
            start = datetime(y, m, 1, tzinfo=tz)
            end = datetime(y + m // 12, m % 12 + 1, 1, tzinfo=tz)
        elif hour is None:
            start = datetime(int(year), int(month), int(day), tzinfo=tz)
            # Wall-clock arithmetic: a local day is 23 or 25 hours at the DST changes.
            end = start + timedelta(days=1)
        else:
            micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
            clock = (int(hour), int(minute), int(second or 0), micros)
            start = datetime(int(year), int(month), int(day), *clock, tzinfo=tz)
            if second is None:
                step = timedelta(minutes=1)
            elif fraction is None:
                step = timedelta(seconds=1)
            else:
                step = timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
            end = start + step
    except (ValueError, OverflowError):
        return None
    return (start - _EPOCH) // _MICROSECOND, (end - _EPOCH) // _MICROSECOND
