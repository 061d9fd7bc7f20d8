"""The simulation's fixed clock and the Swedish local time it writes dates in.

All data is generated relative to :data:`REFERENCE_DATE`, never to the real date, so every
start serves the same resources: "past" and "future" appointments are past and future as
seen from that day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

REFERENCE_DATE = date(2026, 11, 1)
#: Midnight (Swedish time) at the start of the reference date, as a UTC instant.
REFERENCE_INSTANT = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)


def _last_sunday(year: int, month: int) -> date:
    day = date(year, month, 31)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def stockholm_offset(local: datetime) -> timedelta:
    """UTC offset of Swedish wall-clock time ``local`` (naive): CET, or CEST in summer.

    Computed from the EU rule (last Sunday of March to last Sunday of October) rather than
    from a time-zone database, so the data cannot change with the machine's tzdata.
    """
    start = datetime.combine(_last_sunday(local.year, 3), datetime.min.time()) + timedelta(hours=2)
    end = datetime.combine(_last_sunday(local.year, 10), datetime.min.time()) + timedelta(hours=3)
    return timedelta(hours=2) if start <= local < end else timedelta(hours=1)


def local_datetime(local: datetime, *, with_zone: bool = True) -> str:
    """FHIR ``dateTime`` text for Swedish wall-clock time ``local`` (naive), seconds precision.

    ``with_zone=False`` drops the offset, as Region Syd sometimes does (not valid FHIR for a
    time of day, which is the point: the gateway must cope).
    """
    text = local.replace(microsecond=0).isoformat()
    if not with_zone:
        return text
    offset = stockholm_offset(local)
    hours = int(offset.total_seconds()) // 3600
    return f"{text}+{hours:02d}:00"


def utc_instant(local: datetime) -> str:
    """FHIR ``instant`` text (UTC, ``Z``) for Swedish wall-clock time ``local`` (naive)."""
    moment = (local - stockholm_offset(local)).replace(microsecond=0)
    return moment.isoformat() + "Z"


def to_utc(local: datetime) -> datetime:
    """Aware UTC datetime for Swedish wall-clock time ``local`` (naive)."""
    return (local - stockholm_offset(local)).replace(tzinfo=UTC)
