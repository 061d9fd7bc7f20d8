"""Date-times: Stockholm offsets added (DST-correct), dates left, absurd years refused,
RIV-TA's compact ``YYYYMMDDhhmmss`` read the same way."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_profiles.datetimes import (
    DATETIME_FIELDS,
    DateTimeOutOfRange,
    InvalidDateTime,
    compact_date,
    compact_datetime,
    normalise_datetime,
    normalise_datetimes,
    parse_instant,
)
from simregions.clock import local_datetime

STOCKHOLM = ZoneInfo("Europe/Stockholm")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-05-20T07:48:00", "2026-05-20T07:48:00+02:00"),
        ("2026-01-20T07:48:00", "2026-01-20T07:48:00+01:00"),
        ("2026-03-29T01:59:59", "2026-03-29T01:59:59+01:00"),
        ("2026-03-29T03:00:00", "2026-03-29T03:00:00+02:00"),
        ("2026-10-25T02:30:00", "2026-10-25T02:30:00+02:00"),  # ambiguous: the first one
        ("2026-10-25T03:00:00", "2026-10-25T03:00:00+01:00"),
        ("2026-05-20T07:48", "2026-05-20T07:48:00+02:00"),
        ("2026-05-20T07:48:00.125", "2026-05-20T07:48:00.125+02:00"),
        ("1900-06-01T12:00:00", "1900-06-01T12:00:00+01:00"),  # no summer time then
        ("2026", "2026"),
        ("2026-05", "2026-05"),
        ("2026-05-20", "2026-05-20"),
        ("2026-05-20T07:48:00Z", "2026-05-20T07:48:00Z"),
        ("2026-05-20T07:48:00+05:30", "2026-05-20T07:48:00+05:30"),
    ],
)
def test_examples(value: str, expected: str) -> None:
    assert normalise_datetime(value) == expected


@pytest.mark.parametrize("value", ["1849-12-31", "2201-01-01T00:00:00Z", "9999-01-01", "0001"])
def test_absurd_years_are_refused(value: str) -> None:
    with pytest.raises(DateTimeOutOfRange):
        normalise_datetime(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "2026-02-30",
        "2026-13-01",
        "2026-05T10:00:00",
        "2026-05-20T25:00:00",
        "2026-05-20 07:48:00",
        "2026-05-20T07:48:00+15:00",
        "٢٠٢٦-05-20",
        "2026-05-20T07:48:00" + "0" * 10_000,
        None,
        20260520,
        ["2026"],
    ],
)
def test_malformed_values_are_refused(value: Any) -> None:
    with pytest.raises(InvalidDateTime):
        normalise_datetime(value)


local_times = st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2100, 12, 31))


@given(local_times)
def test_agrees_with_zoneinfo_and_keeps_wall_time(moment: datetime) -> None:
    # The text carries no fold: a doubled or missing wall time is read as its first
    # occurrence (fold=0), as the module says.
    moment = moment.replace(microsecond=0, fold=0)
    text = normalise_datetime(moment.isoformat())
    parsed = datetime.fromisoformat(text)
    assert parsed.replace(tzinfo=None) == moment
    assert parsed.utcoffset() == moment.replace(tzinfo=STOCKHOLM).utcoffset()
    assert normalise_datetime(text) == text  # idempotent


@given(st.datetimes(min_value=datetime(1996, 1, 1), max_value=datetime(2100, 12, 31)))
def test_agrees_with_the_simulation_clock_outside_the_switch_hours(moment: datetime) -> None:
    # The simulation computes today's EU rule; before 1996 summer time ended in September,
    # which the time-zone database knows and the simulation does not.
    moment = moment.replace(microsecond=0)
    if moment.hour == 2:  # the hour that is missing or doubled; the rules differ only there
        moment += timedelta(hours=1)
    assert normalise_datetime(local_datetime(moment, with_zone=False)) == local_datetime(moment)


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2199, 1, 1), timezones=st.just(UTC)
    )
)
def test_instants_with_offsets_are_untouched(moment: datetime) -> None:
    text = moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    assert normalise_datetime(text) == text


def _resource(resource_type: str, **body: Any) -> dict[str, Any]:
    return {"resourceType": resource_type, "id": "x", **body}


def test_walks_the_known_fields_per_type() -> None:
    encounter = _resource(
        "Encounter",
        period={"start": "2026-05-20T07:48:00", "end": "2026-05-20T08:00:00+02:00"},
        location=[{"period": {"start": "2026-01-02T10:00:00"}}, "odd"],
    )
    assert normalise_datetimes(encounter)
    assert encounter["period"] == {
        "start": "2026-05-20T07:48:00+02:00",
        "end": "2026-05-20T08:00:00+02:00",
    }
    assert encounter["location"][0]["period"]["start"] == "2026-01-02T10:00:00+01:00"
    for resource_type, body in [
        (
            "Observation",
            {"effectiveDateTime": "2026-05-20T07:48:00", "issued": "2026-05-20T09:00:00"},
        ),
        ("Appointment", {"start": "2026-05-20T07:48:00", "end": "2026-05-20T08:08:00"}),
        ("MedicationRequest", {"authoredOn": "2026-05-20T07:48:00"}),
        (
            "Condition",
            {"onsetDateTime": "2026-05-20T07:48:00", "recordedDate": "2026-05-20T07:48:00"},
        ),
        ("DocumentReference", {"date": "2026-05-20T07:48:00"}),
    ]:
        resource = _resource(resource_type, **body)
        assert normalise_datetimes(resource)
        for key in body:
            assert resource[key].endswith("+02:00"), (resource_type, key)


def test_absurd_and_invalid_values_are_dropped_and_reported() -> None:
    observation = _resource(
        "Observation",
        effectiveDateTime="9999-12-31T00:00:00",
        issued="garbage",
        meta={"lastUpdated": "2026-05-20T07:48:00Z"},
    )
    issues: list[str] = []
    assert normalise_datetimes(observation, issues)
    assert "effectiveDateTime" not in observation
    assert "issued" not in observation
    assert observation["meta"]["lastUpdated"] == "2026-05-20T07:48:00Z"
    assert sorted(issues) == [
        "Observation.effectiveDateTime: out of range, dropped",
        "Observation.issued: not a dateTime, dropped",
    ]


def test_every_table_entry_is_a_path() -> None:
    assert all(paths and all(path for path in paths) for paths in DATETIME_FIELDS.values())


@pytest.mark.parametrize(
    "resource",
    [
        None,
        [],
        {},
        {"resourceType": 5},
        {"resourceType": "Unknown", "date": "x"},
        {"resourceType": "Encounter", "period": "2026"},
        {"resourceType": "Encounter", "period": [[{"start": 1}]]},
        {"resourceType": "Observation", "effectiveDateTime": {"a": 1}},
    ],
)
def test_odd_resources_never_raise(resource: Any) -> None:
    snapshot = copy.deepcopy(resource)
    normalise_datetimes(resource, [])
    if not isinstance(resource, dict) or resource.get("resourceType") not in DATETIME_FIELDS:
        assert resource == snapshot


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-05-20T08:31:00Z", datetime(2026, 5, 20, 8, 31, tzinfo=UTC)),
        ("2026-05-20T10:31:00+02:00", datetime(2026, 5, 20, 8, 31, tzinfo=UTC)),
        ("2026-05-20T08:31:00", None),  # no offset: not an instant
        ("2026-05-20", None),
        ("yesterday", None),
        (20260520, None),
        (None, None),
    ],
)
def test_parse_instant_accepts_only_instants_with_an_offset(
    value: object, expected: datetime | None
) -> None:
    assert parse_instant(value) == expected


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("20260115074500", "2026-01-15T07:45:00+01:00"),
        ("20260520074800", "2026-05-20T07:48:00+02:00"),
        ("20261025023000", "2026-10-25T02:30:00+02:00"),  # the repeated hour: first pass
    ],
)
def test_swedish_times_get_the_stockholm_offset(text: str, iso: str) -> None:
    assert compact_datetime(text) == iso


@pytest.mark.parametrize("text", ["2026011507450", "20261315074500", "2026-01-15", ""])
def test_malformed_swedish_times_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        compact_datetime(text)


def test_swedish_dates() -> None:
    assert compact_date("19121212") == "1912-12-12"
    with pytest.raises(ValueError, match=r"\w"):
        compact_date("19121232")


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2199, 12, 31)))
def test_compact_times_agree_with_the_iso_form(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    compact = moment.strftime("%Y%m%d%H%M%S")
    assert compact_datetime(compact) == normalise_datetime(moment.isoformat())
