"""Dates at their own precision: the days ``2026``, ``2026-05`` and ``2026-05-20`` cover."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_profiles.datetimes import parse_date_span


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026", (date(2026, 1, 1), date(2027, 1, 1))),
        ("2026-05", (date(2026, 5, 1), date(2026, 6, 1))),
        ("2026-12", (date(2026, 12, 1), date(2027, 1, 1))),
        ("2026-05-20", (date(2026, 5, 20), date(2026, 5, 21))),
        ("2028-02-29", (date(2028, 2, 29), date(2028, 3, 1))),
        ("9999-12-30", (date(9999, 12, 30), date(9999, 12, 31))),
    ],
)
def test_a_date_covers_its_year_month_or_day(value: str, expected: tuple[date, date]) -> None:
    assert parse_date_span(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "26",
        "2026-5",
        "2026-13",
        "2026-02-30",
        "0000",
        "9999",
        "9999-12-31",
        "20260520",
        "2026-05-20T10:00:00+02:00",
    ],
)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the calendar's or the format's message
        parse_date_span(value)
