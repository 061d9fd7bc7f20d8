"""What ``PUT Appointment`` may change: a cancellation or a move to another Slot, of an
Appointment that may still change, and nothing else of the body."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_profiles.writes import CHANGEABLE_APPOINTMENT, WriteShapeError, appointment_change

SLOT = [{"reference": "Slot/region-vast.s1"}]


def _current(status: str) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "id": "region-vast.a1",
        "meta": {"versionId": "3"},
        "status": status,
        "slot": SLOT,
        "participant": [{"actor": {"reference": "Patient/me"}, "status": "accepted"}],
    }


@pytest.mark.parametrize("status", sorted(CHANGEABLE_APPOINTMENT))
def test_an_appointment_that_may_change_is_cancelled_or_moved(status: str) -> None:
    current = _current(status)
    cancelled = appointment_change(current, current | {"status": "cancelled", "comment": "x"})
    assert cancelled == {k: v for k, v in current.items() if k != "meta"} | {"status": "cancelled"}
    moved = appointment_change(current, current | {"slot": [{"reference": "Slot/region-vast.s2"}]})
    assert moved["slot"] == [{"reference": "Slot/region-vast.s2"}]
    assert moved["status"] == status


@pytest.mark.parametrize(
    "status", ["cancelled", "fulfilled", "arrived", "checked-in", "noshow", "entered-in-error"]
)
def test_an_appointment_past_changing_is_neither_cancelled_nor_moved(status: str) -> None:
    current = _current(status)
    with pytest.raises(WriteShapeError, match="cannot change"):
        appointment_change(current, current | {"slot": [{"reference": "Slot/region-vast.s2"}]})
    if status != "cancelled":
        with pytest.raises(WriteShapeError, match="cannot change"):
            appointment_change(current, current | {"status": "cancelled"})


def test_an_appointment_without_a_status_does_not_change() -> None:
    current = {k: v for k, v in _current("booked").items() if k != "status"}
    with pytest.raises(WriteShapeError, match="without a status cannot change"):
        appointment_change(current, current | {"status": "cancelled"})


def test_a_repeated_cancellation_changes_nothing() -> None:
    current = _current("cancelled")
    assert appointment_change(current, current)["status"] == "cancelled"


def test_an_appointment_is_not_cancelled_and_moved_at_once() -> None:
    current = _current("booked")
    body = current | {"status": "cancelled", "slot": [{"reference": "Slot/region-vast.s2"}]}
    with pytest.raises(WriteShapeError, match="not both"):
        appointment_change(current, body)


def test_what_the_gateway_added_is_not_sent_back() -> None:
    theirs = {"url": "http://regionvast.example.se/fhir/booking-channel", "valueCode": "web"}
    ours = {
        "url": "https://samlad.se/fhir/StructureDefinition/also-reported-by",
        "valueUri": "urn:samlad:source:region-nord#Appointment/77",
    }
    current = _current("booked") | {"extension": [theirs, ours]}
    cancelled = appointment_change(current, current | {"status": "cancelled"})
    assert cancelled["extension"] == [theirs]
    assert "meta" not in cancelled
    only_ours = appointment_change(current | {"extension": [ours]}, {"status": "cancelled"})
    assert "extension" not in only_ours
