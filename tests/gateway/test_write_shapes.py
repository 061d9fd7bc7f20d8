"""What a write may carry: the gateway builds what it sends from an allow-list per type,
names no patient but the writer's, and checks every unit a write goes to. Real regions on
loopback; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from gateway.merge.written import ForeignReference, to_owner
from tests.conftest import IssuerKit
from tests.gateway.consent_helpers import block
from tests.gateway.writes_helpers import Written, booking, first_free, fresh_regions, gateway_over

pytestmark = pytest.mark.anyio


@pytest.fixture
def written() -> Iterator[Written]:
    yield from fresh_regions()


def _stored(written: Written, region: str, kind: str) -> list[dict[str, Any]]:
    store = written.apps[region].store
    return [
        orjson.loads(s.body)
        for s in store.candidates(kind, None)
        if not s.id.isdigit() or int(s.id) >= 5000
    ]


async def test_a_write_names_no_other_patient_nor_another_sender(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        me = await gw.patient_id()
        slot = await first_free(gw, "vast")
        extra = booking(me, slot["id"]) | {"subject": {"reference": "Patient/region-vast.1467"}}
        refused = await gw.client.post(
            "/fhir/Appointment", json=extra, headers=gw.citizen() | {"Idempotency-Key": "b1"}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["resourceType"] == "OperationOutcome"
        two = booking(me, slot["id"])
        two["participant"].append({"actor": {"reference": "Patient/region-vast.1467"}})
        refused = await gw.client.post("/fhir/Appointment", json=two, headers=gw.citizen())
        assert refused.status_code == 422
        message = {
            "resourceType": "Communication",
            "subject": {"reference": f"Patient/{me}"},
            "recipient": [{"reference": "Organization/region-vast.1002"}],
            "payload": [{"contentString": "hej"}],
        }
        forged = message | {"sender": {"reference": "Practitioner/region-vast.1"}}
        refused = await gw.client.post("/fhir/Communication", json=forged, headers=gw.citizen())
        assert refused.status_code == 422
        long = message | {"payload": [{"contentString": "x" * 5000}]}
        refused = await gw.client.post("/fhir/Communication", json=long, headers=gw.citizen())
        assert refused.status_code == 422
        assert written.apps["vast"].writes.created == {}
        sent = await gw.client.post("/fhir/Communication", json=message, headers=gw.citizen())
        assert sent.status_code == 201, sent.text
        assert sent.json()["sender"] == {"reference": f"Patient/{me}"}
    [stored] = _stored(written, "vast", "Communication")
    assert stored["sender"] == stored["subject"]
    assert stored["subject"]["reference"].startswith("Patient/")
    assert set(stored) <= {
        "resourceType",
        "id",
        "meta",
        "status",
        "subject",
        "sender",
        "recipient",
        "payload",
        "identifier",
    }


async def test_a_booking_with_a_status_of_the_wrong_type_is_a_422(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        me = await gw.patient_id()
        slot = await first_free(gw, "vast")
        for status in ([], {}, "cancelled"):
            body = booking(me, slot["id"]) | {"status": status}
            refused = await gw.client.post("/fhir/Appointment", json=body, headers=gw.citizen())
            assert refused.status_code == 422, refused.text
            assert refused.json()["resourceType"] == "OperationOutcome"
        for owner in ("str", {"identifier": {"value": "SE2321000131-E000000000001"}}):
            task = {
                "resourceType": "Task",
                "for": {"reference": f"Patient/{me}"},
                "focus": {"reference": "MedicationRequest/region-nord.1"},
                "owner": owner,
            }
            refused = await gw.client.post("/fhir/Task", json=task, headers=gw.citizen())
            assert refused.status_code == 422, refused.text
    assert written.apps["vast"].writes.created == {}


async def test_a_move_is_decided_at_the_new_unit_and_changes_nothing_else(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        me = await gw.patient_id()
        found = await gw.client.get(
            "/fhir/Slot", params={"status": "free", "start": "ge2026-11-03"}, headers=gw.citizen()
        )
        entries = found.json()["entry"]
        units = {
            e["resource"]["id"]: e["resource"]["actor"][0]["identifier"]["value"]
            for e in entries
            if e["search"]["mode"] == "include"
        }
        slots = [
            e["resource"]
            for e in entries
            if e["search"]["mode"] == "match" and e["resource"]["id"].startswith("region-vast.")
        ]

        def unit(slot: dict[str, Any]) -> str:
            return units[slot["schedule"]["reference"].removeprefix("Schedule/")]

        first = slots[0]
        other = next(s for s in slots if unit(s) != unit(first))
        made = await gw.client.post(
            "/fhir/Appointment", json=booking(me, first["id"]), headers=gw.citizen()
        )
        assert made.status_code == 201, made.text
        appointment = made.json()
        await block(gw, me, unit(other), level="care-unit")
        moved = appointment | {"slot": [{"reference": f"Slot/{other['id']}"}]}
        refused = await gw.client.put(
            f"/fhir/Appointment/{appointment['id']}", json=moved, headers=gw.citizen()
        )
        assert refused.status_code == 403, refused.text
        assert "blocked-unit" in refused.text
        # Only cancelled is a status a client sets.
        odd = appointment | {"status": "fulfilled"}
        refused = await gw.client.put(
            f"/fhir/Appointment/{appointment['id']}", json=odd, headers=gw.citizen()
        )
        assert refused.status_code == 422, refused.text
        # Cancelled: whatever else the body says is not taken.
        stranger = appointment | {
            "status": "cancelled",
            "participant": [{"actor": {"reference": "Patient/region-vast.1467"}}],
        }
        refused = await gw.client.put(
            f"/fhir/Appointment/{appointment['id']}", json=stranger, headers=gw.citizen()
        )
        assert refused.status_code in (403, 404), refused.text
        cancel = appointment | {
            "status": "cancelled",
            "comment": "changed",
            "participant": [
                *appointment["participant"],
                {"actor": {"reference": "Practitioner/region-vast.1"}},
            ],
        }
        done = await gw.client.put(
            f"/fhir/Appointment/{appointment['id']}", json=cancel, headers=gw.citizen()
        )
        assert done.status_code == 200, done.text
        # Once cancelled, it moves no more (to a Slot of a unit it may reach).
        near = next(s for s in slots[1:] if unit(s) == unit(first))
        again = appointment | {
            "status": "cancelled",
            "slot": [{"reference": f"Slot/{near['id']}"}],
        }
        refused = await gw.client.put(
            f"/fhir/Appointment/{appointment['id']}", json=again, headers=gw.citizen()
        )
        assert refused.status_code == 422, refused.text
        assert "cancelled cannot change" in refused.text
    [stored] = _stored(written, "vast", "Appointment")
    assert stored["status"] == "cancelled"
    assert stored["slot"] == [{"reference": f"Slot/{first['id'].removeprefix('region-vast.')}"}]
    assert "comment" not in stored
    assert "Practitioner/1" not in orjson.dumps(stored).decode()


@pytest.mark.parametrize(
    "reference",
    [
        {"reference": "Patient/region-vast.1467"},
        {"reference": "Patient/someone-else"},
        {"reference": "https://elsewhere.example/fhir/Patient/1"},
        {"reference": "Patient?identifier=http://x|1"},
        {"identifier": {"system": "http://x", "value": "1"}},
        {"type": "Patient", "identifier": {"system": "http://x", "value": "1"}},
    ],
)
def test_to_owner_refuses_any_patient_but_the_writers_and_indirect_references(
    reference: dict[str, Any],
) -> None:
    resource = {"resourceType": "Task", "for": {"reference": "Patient/me"}, "focus": reference}
    with pytest.raises(ForeignReference):
        to_owner(resource, "region-vast", "me", "42")


def test_to_owner_names_the_owners_patient_and_ids() -> None:
    resource = {
        "resourceType": "Task",
        "for": {"reference": "Patient/me"},
        "focus": {"reference": "MedicationRequest/region-vast.7"},
        "owner": {"type": "Organization", "identifier": {"system": "http://x", "value": "u"}},
    }
    sent = to_owner(resource, "region-vast", "me", "42")
    assert sent["for"] == {"reference": "Patient/42"}
    assert sent["focus"] == {"reference": "MedicationRequest/7"}
