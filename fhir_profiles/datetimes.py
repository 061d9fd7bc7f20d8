"""FHIR dateTimes with a UTC offset: Swedish local times completed, absurd ones refused.

FHIR requires an offset on any dateTime with a time of day, but some sources send Swedish
wall-clock time without one. :func:`normalise_datetime` adds the Europe/Stockholm offset
in force at that moment (CET +01:00 or CEST +02:00, from the time-zone database). Two
wall-clock hours are not unique: in the autumn hour that occurs twice the first (summer
time) is taken; a spring time that does not exist gets the winter offset (PEP 495
``fold=0``).

Dates and partial dates (``2026``, ``2026-05``, ``2026-05-20``) and values that already
carry ``Z`` or an offset are returned unchanged. Years before :data:`MIN_YEAR` or after
:data:`MAX_YEAR` are refused with :class:`DateTimeOutOfRange` so the caller can drop the
value and warn.

RIV-TA services write Swedish wall-clock time as ``YYYYMMDDhhmmss`` and dates as
``YYYYMMDD``: :func:`compact_datetime` and :func:`compact_date` read those into the same
FHIR forms, with the same Stockholm offset.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from fhir_profiles.resource_types import RESOURCE_TYPES

STOCKHOLM = "Europe/Stockholm"
MIN_YEAR = 1850
MAX_YEAR = 2200

_DATETIME = re.compile(
    r"(?P<date>(?P<year>[0-9]{4})(?:-(?P<month>0[1-9]|1[0-2])(?:-(?P<day>0[1-9]|[12][0-9]|3[01]))?)?)"
    r"(?:T(?P<time>(?:[01][0-9]|2[0-3]):[0-5][0-9](?::(?:[0-5][0-9]|60)(?:\.[0-9]{1,9})?)?)"
    r"(?P<zone>Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)?)?",
    re.ASCII,
)
# Longer than any FHIR dateTime: refused before any regex work.
_MAX_LENGTH = 40
# RIV-TA's compact forms.
_COMPACT_DATETIME = re.compile(r"^[0-9]{14}$")
_COMPACT_DATE = re.compile(r"^\d{8}$")


class InvalidDateTime(ValueError):
    """Not a FHIR date/dateTime/instant, even allowing a missing offset."""


class DateTimeOutOfRange(InvalidDateTime):
    """A well-formed date outside the years the gateway accepts (MIN_YEAR..MAX_YEAR)."""


@functools.cache
def _zone() -> ZoneInfo:
    return ZoneInfo(STOCKHOLM)


@functools.lru_cache(maxsize=4096)
def _offset(date_hour: str) -> str:
    """The Stockholm offset text for local ``YYYY-MM-DDTHH`` (transitions are on the hour)."""
    local = datetime.fromisoformat(date_hour + ":00").replace(tzinfo=_zone())
    offset = local.utcoffset()
    assert offset is not None  # a ZoneInfo always gives one
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def compact_datetime(text: str) -> str:
    """ISO 8601 with the Stockholm offset for Swedish wall-clock ``YYYYMMDDhhmmss``.

    ``20260520074800`` becomes ``2026-05-20T07:48:00+02:00``; the offset is chosen as for
    :func:`normalise_datetime`. Raises :class:`InvalidDateTime` for anything else,
    including a date or time that does not exist on the calendar or clock. The year is
    not range-checked here: :func:`normalise_datetimes` does that where resources are
    normalised.
    """
    text = text.strip()
    if not _COMPACT_DATETIME.match(text):
        raise InvalidDateTime("not a YYYYMMDDhhmmss timestamp")
    year, month, day = int(text[0:4]), int(text[4:6]), int(text[6:8])
    hour, minute, second = int(text[8:10]), int(text[10:12]), int(text[12:14])
    try:
        local = datetime(year, month, day, hour, minute, second).isoformat()
    except ValueError as exc:
        raise InvalidDateTime("not a calendar date and clock time") from exc
    return local + _offset(local[:13])


def compact_date(text: str) -> str:
    """``YYYY-MM-DD`` for ``YYYYMMDD``; :class:`InvalidDateTime` for anything else."""
    text = text.strip()
    if not _COMPACT_DATE.match(text):
        raise InvalidDateTime("not a YYYYMMDD date")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:])).isoformat()
    except ValueError as exc:
        raise InvalidDateTime("not a calendar date") from exc


def normalise_datetime(value: str) -> str:
    """Return ``value`` as a FHIR dateTime with an offset wherever it has a time of day.

    A time without offset is taken as Swedish local time and gets the Stockholm offset
    (seconds are added when missing: ``10:15`` becomes ``10:15:00``). Dates, partial dates
    and values with an offset come back unchanged. Raises :class:`InvalidDateTime` for
    text that is no date at all and :class:`DateTimeOutOfRange` for years outside
    ``MIN_YEAR..MAX_YEAR``; the message never quotes the value. Results are cached: the
    same instants recur across a person's resources and across requests.
    """
    if not isinstance(value, str) or len(value) > _MAX_LENGTH:
        raise InvalidDateTime("not a FHIR dateTime")
    return _normalise_text(value)


# 4,096: an instant recurs within a record (a lab panel's results share it), seldom far
# apart; at 65,536 entries (about 200 bytes each, 13 MB when full) the cache grew with
# each large record's distinct instants, which no later request needed.
@functools.lru_cache(maxsize=4096)
def _normalise_text(value: str) -> str:
    match = _DATETIME.fullmatch(value)
    if match is None:
        raise InvalidDateTime("not a FHIR dateTime")
    year_text, day, time, zone = match.group("year", "day", "time", "zone")
    year = int(year_text)
    if year < MIN_YEAR or year > MAX_YEAR:
        raise DateTimeOutOfRange("year outside the accepted range")
    if day is not None:
        _check_date(value[:10])
    if time is None:
        return value
    if day is None:
        raise InvalidDateTime("a time of day needs a full date")
    if zone is not None:
        return value
    if len(time) == 5:
        time += ":00"
    return f"{value[:10]}T{time}{_offset(value[:13])}"


@functools.lru_cache(maxsize=8192)
def _check_date(text: str) -> None:
    try:
        date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError as exc:
        raise InvalidDateTime("not a calendar date") from exc


#: Per resource type, the paths of its date/dateTime/instant elements the gateway serves
#: (from :mod:`fhir_profiles.resource_types`). Lists on a path are walked element by element.
DATETIME_FIELDS: Mapping[str, tuple[tuple[str, ...], ...]] = MappingProxyType(
    {t.name: t.datetime_fields for t in RESOURCE_TYPES.values() if t.datetime_fields}
)
_COMMON_FIELDS: tuple[tuple[str, ...], ...] = (("meta", "lastUpdated"),)


def _set(node: dict[str, Any], key: str, where: str, issues: list[str] | None) -> bool:
    """Normalise ``node[key]`` in place (drop it if unusable); True if it changed."""
    value = node[key]
    try:
        normalised = normalise_datetime(value)
    except InvalidDateTime as exc:
        del node[key]
        if issues is not None:
            reason = "out of range" if isinstance(exc, DateTimeOutOfRange) else "not a dateTime"
            issues.append(f"{where}.{key}: {reason}, dropped")
        return True
    if normalised is value:
        return False
    node[key] = normalised
    return True


def _walk(
    node: Any, path: tuple[str, ...], where: str, issues: list[str] | None, depth: int = 0
) -> bool:
    if isinstance(node, list):
        changed = False
        for index, item in enumerate(node):
            changed |= _walk(item, path, f"{where}[{index}]", issues, depth)
        return changed
    if not isinstance(node, dict):
        return False
    key = path[depth]
    if key not in node:
        return False
    if depth + 1 < len(path):
        return _walk(node[key], path, f"{where}.{key}", issues, depth + 1)
    return _set(node, key, where, issues)


def normalise_datetimes(resource: dict[str, Any], issues: list[str] | None = None) -> bool:
    """Normalise every known dateTime element of ``resource`` in place; True if changed.

    The elements come from :data:`DATETIME_FIELDS` for the resource's type (plus
    ``meta.lastUpdated``). A value without offset gets the Stockholm offset; a value that
    is no dateTime or has an absurd year is removed and, when ``issues`` is given, reported
    there by path (never by value). Unknown types and odd input are left alone.
    """
    if not isinstance(resource, dict):
        return False
    resource_type = resource.get("resourceType")
    paths = DATETIME_FIELDS.get(resource_type, ()) if isinstance(resource_type, str) else ()
    changed = False
    where = str(resource_type)
    for path in (*paths, *_COMMON_FIELDS):
        if path[0] not in resource:
            continue
        if len(path) == 1:
            changed |= _set(resource, path[0], where, issues)
        else:
            changed |= _walk(resource, path, where, issues)
    return changed


def parse_datetime(text: str) -> datetime:
    """A FHIR date, dateTime or instant as a ``datetime`` (naive when it has no offset);
    raises ValueError when it is none of them."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse_instant(value: object) -> datetime | None:
    """An instant with a UTC offset, or None for anything else (not a string, not a
    dateTime, or without an offset)."""
    if not isinstance(value, str):
        return None
    try:
        moment = parse_datetime(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


_DATE_ONLY = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?", re.ASCII)


def parse_date_span(text: str) -> tuple[date, date]:
    """The days a FHIR date covers at its own precision: ``2026`` the year, ``2026-05`` the
    month, ``2026-05-20`` the day, as (its first day, the first day after it).

    Raises ValueError for anything else, a dateTime included, and for a date whose day
    after cannot be represented (9999-12-31).
    """
    match = _DATE_ONLY.fullmatch(text)
    if match is None:
        raise ValueError("not a FHIR date")
    year_text, month_text, day_text = match.groups()
    year = int(year_text)
    if month_text is None:
        return date(year, 1, 1), date(year + 1, 1, 1)
    month = int(month_text)
    if day_text is None:
        return date(year, month, 1), date(year + month // 12, month % 12 + 1, 1)
    first = date(year, month, int(day_text))
    return first, date.fromordinal(first.toordinal() + 1)
