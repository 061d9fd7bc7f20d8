"""Writes routed to the region that owns them: free times, bookings, cancellations,
retries after a lost answer, a region down (also across a gateway restart), a slot taken.
Real regions on loopback; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from fhir_profiles.writes import WRITABLE
from tests.conftest import IssuerKit
from tests.gateway.consent_helpers import block
from tests.gateway.writes_helpers import (
    Written,
    booking,
    first_free,
    fresh_regions,
    gateway_over,
    until,
)

pytestmark = pytest.mark.anyio

#: Vårdcentralen Norrby's Organization id in Region Nord.
NORRBY = "d3629f5e-6d6f-5ee0-ab4b-2fe722d491e2"


@pytest.fixture
def written() -> Iterator[Written]:
    yield from fresh_regions()


def _region_appointments(written: Written, region: str) -> list[dict[str, object]]:
    import orjson

    store = written.apps[region].store
    return [
        orjson.loads(s.body)
        for s in store.candidates("Appointment", None)
        if s.id.startswith("appointment-") or (s.id.isdigit() and int(s.id) >= 5000)
    ]


async def test_free_times_come_from_every_region_with_their_units(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        response = await gw.client.get(
            "/fhir/Slot",
            params={"status": "free", "start": "ge2026-11-03", "service-type": "Läkarbesök"},
            headers=gw.citizen(),
        )
    assert response.status_code == 200
    entries = response.json()["entry"]
    slots = [e["resource"] for e in entries if e["search"]["mode"] == "match"]
    schedules = [e["resource"] for e in entries if e["search"]["mode"] == "include"]
    assert {s["id"].split(".")[0] for s in slots} == {"region-nord", "region-vast", "region-syd"}
    assert all(s["status"] == "free" for s in slots)
    assert all(s["schedule"]["reference"].startswith("Schedule/region-") for s in slots)
    units = {a["identifier"]["value"] for s in schedules for a in s["actor"]}
    assert "SE2321009002-VCAL" in units


async def test_a_booking_reaches_its_region_once_and_shows_in_the_overview_then_cancels(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        slot = await first_free(gw, "vast")
        headers = gw.citizen() | {"Idempotency-Key": "book-1"}
        made = await gw.client.post(
            "/fhir/Appointment", json=booking(patient_id, slot["id"]), headers=headers
        )
        assert made.status_code == 201, made.text
        appointment = made.json()
        assert appointment["id"].startswith("region-vast.")
        assert appointment["status"] == "booked"
        assert {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"} in (
            appointment["participant"]
        )
        assert made.headers["Location"].endswith(f"/Appointment/{appointment['id']}")
        # The same request again (its answer lost on the way): the same booking.
        again = await gw.client.post(
            "/fhir/Appointment", json=booking(patient_id, slot["id"]), headers=headers
        )
        assert again.status_code == 201
        assert again.headers["Location"] == made.headers["Location"]
        assert written.apps["vast"].writes.created == {"Appointment": 1}
        in_region = _region_appointments(written, "vast")
        assert [a["status"] for a in in_region] == ["booked"]
        overview = await gw.client.get(
            f"/fhir/Appointment?patient={patient_id}&_id={appointment['id']}",
            headers=gw.citizen(),
        )
        shown = [e["resource"] for e in overview.json()["entry"] if "resource" in e]
        assert [(a["id"], a["status"]) for a in shown if a["resourceType"] == "Appointment"] == [
            (appointment["id"], "booked")
        ]
        cancel = appointment | {"status": "cancelled"}
        cancelled = await gw.client.put(
            f"/fhir/Appointment/{appointment['id']}", json=cancel, headers=gw.citizen()
        )
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert [a["status"] for a in _region_appointments(written, "vast")] == ["cancelled"]
        # The slot is free again at the region.
        free = await first_free(gw, "vast")
        assert free["id"] == slot["id"]


async def test_a_slot_taken_is_a_409_outcome(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        slot = await first_free(gw, "nord")
        first = await gw.client.post(
            "/fhir/Appointment",
            json=booking(patient_id, slot["id"]),
            headers=gw.citizen() | {"Idempotency-Key": "a"},
        )
        assert first.status_code == 201
        second = await gw.client.post(
            "/fhir/Appointment",
            json=booking(patient_id, slot["id"]),
            headers=gw.citizen() | {"Idempotency-Key": "b"},
        )
    assert second.status_code == 409
    outcome = second.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "conflict"
    assert written.apps["nord"].writes.created == {"Appointment": 1}


async def test_a_key_used_for_another_request_is_refused(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        slot = await first_free(gw, "syd")
        headers = gw.citizen() | {"Idempotency-Key": "same"}
        first = await gw.client.post(
            "/fhir/Appointment", json=booking(patient_id, slot["id"]), headers=headers
        )
        other = booking(patient_id, slot["id"]) | {"comment": "another"}
        second = await gw.client.post("/fhir/Appointment", json=other, headers=headers)
    assert first.status_code == 201
    assert second.status_code == 422
    assert second.json()["resourceType"] == "OperationOutcome"


async def test_an_answer_lost_on_the_way_back_books_once(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    vast = written.regions["vast"]
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        slot = await first_free(gw, "vast")
        # The region books, then the connection breaks before its answer arrives.
        vast.behaviour.fault = "reset"
        vast.behaviour.fault_paths = "/fhir/Appointment"
        queued = await gw.client.post(
            "/fhir/Appointment",
            json=booking(patient_id, slot["id"]),
            headers=gw.citizen() | {"Idempotency-Key": "lost"},
        )
        assert queued.status_code == 202, queued.text
        status_url = queued.headers["Content-Location"]
        assert written.apps["vast"].writes.created == {"Appointment": 1}
        vast.behaviour.fault = "none"

        async def delivered() -> bool:
            answer = await gw.client.get(status_url, headers=gw.citizen())
            return answer.status_code == 200

        await until(delivered)
        answer = await gw.client.get(status_url, headers=gw.citizen())
        assert answer.json()["resourceType"] == "Appointment"
        assert answer.json()["status"] == "booked"
    assert written.apps["vast"].writes.created == {"Appointment": 1}


async def test_a_region_down_queues_and_delivers_once_after_a_gateway_restart(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    nord = written.regions["nord"]
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        slot = await first_free(gw, "nord")
        nord.behaviour.fault = "down"
        queued = await gw.client.post(
            "/fhir/Appointment",
            json=booking(patient_id, slot["id"]),
            headers=gw.citizen() | {"Idempotency-Key": "down"},
        )
        assert queued.status_code == 202, queued.text
        assert queued.json()["resourceType"] == "OperationOutcome"
        status_url = queued.headers["Content-Location"]
        waiting = await gw.client.get(status_url, headers=gw.citizen())
        assert waiting.status_code == 202
        # Nobody else sees it.
        other = await gw.client.get(status_url, headers=gw.citizen("198107281563"))
        assert other.status_code == 404
    assert written.apps["nord"].writes.created == {}
    nord.behaviour.fault = "none"
    async with gateway_over(database_url, issuer, written) as gw:

        async def delivered() -> bool:
            answer = await gw.client.get(status_url, headers=gw.citizen())
            return answer.status_code == 200

        await until(delivered)
        # A retried request after the restart is answered from the outbox.
        again = await gw.client.post(
            "/fhir/Appointment",
            json=booking(patient_id, slot["id"]),
            headers=gw.citizen() | {"Idempotency-Key": "down"},
        )
        assert again.status_code == 201
    assert written.apps["nord"].writes.created == {"Appointment": 1}


async def test_a_renewal_reaches_the_prescribing_region_and_its_status_follows(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        found = await gw.client.get(
            f"/fhir/MedicationRequest?patient={patient_id}", headers=gw.citizen()
        )
        medicine = next(
            e["resource"]
            for e in found.json()["entry"]
            if e.get("resource", {}).get("id", "").startswith("region-nord.")
        )
        task = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "code": {"text": "Förnya recept"},
            "for": {"reference": f"Patient/{patient_id}"},
            "focus": {"reference": f"MedicationRequest/{medicine['id']}"},
            # The prescription names no unit: the client names the one to ask.
            "owner": {"reference": f"Organization/region-nord.{NORRBY}"},
        }
        made = await gw.client.post(
            "/fhir/Task", json=task, headers=gw.citizen() | {"Idempotency-Key": "renew"}
        )
        assert made.status_code == 201, made.text
        assert made.json()["focus"]["reference"] == f"MedicationRequest/{medicine['id']}"
        local = made.json()["id"].removeprefix("region-nord.")
        assert written.apps["nord"].writes.created == {"Task": 1}
        # The region's staff renew it.
        region = written.regions["nord"].server.url
        renewed = await asyncio.to_thread(
            httpx.put,
            f"{region}/_sim/status/Task/{local}",
            json={"status": "completed"},
            headers={"Authorization": "Bearer sim-nord-token"},
        )
        assert renewed.status_code == 200
        now = await gw.client.get(_monitor(made), headers=gw.citizen())
        assert now.status_code == 200
        assert now.json()["status"] == "completed"


def _monitor(response: httpx.Response) -> str:
    """Where a write's status is read (its ``Link`` of relation ``monitor``)."""
    link = response.headers["Link"]
    assert link.endswith('>; rel="monitor"')
    return link[1:].split(">")[0].removeprefix("http://gateway.test")


async def test_a_message_reaches_the_units_region(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        message = {
            "resourceType": "Communication",
            "status": "completed",
            "subject": {"reference": f"Patient/{patient_id}"},
            "recipient": [{"reference": "Organization/region-vast.1002"}],
            "payload": [{"contentString": "Jag har fått utslag av den nya medicinen."}],
        }
        made = await gw.client.post(
            "/fhir/Communication", json=message, headers=gw.citizen() | {"Idempotency-Key": "m"}
        )
    assert made.status_code == 201, made.text
    assert written.apps["vast"].writes.created == {"Communication": 1}


async def test_who_may_write(database_url: str, issuer: IssuerKit, written: Written) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        slot = await first_free(gw, "vast")
        body = booking(patient_id, slot["id"])
        # No consent: a clinician and an integrator may not book, even with write scopes.
        for headers in (
            gw.clinician(scope="user/*.rs user/Appointment.cu"),
            gw.integrator(scope="system/*.rs system/Appointment.c"),
        ):
            refused = await gw.client.post("/fhir/Appointment", json=body, headers=headers)
            assert refused.status_code == 403
        # Reading scopes only: refused whatever the body.
        refused = await gw.client.post(
            "/fhir/Appointment", json={}, headers=gw.citizen(scope="patient/*.rs")
        )
        assert refused.status_code == 403
        # Someone else's booking for Tolvan: refused.
        other = await gw.client.post(
            "/fhir/Appointment", json=body, headers=gw.citizen("198107281563")
        )
        assert other.status_code == 403
    assert written.apps["vast"].writes.created == {}


async def test_no_booking_at_a_blocked_unit(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        found = await gw.client.get(
            "/fhir/Slot",
            params={"status": "free", "start": "ge2026-11-03"},
            headers=gw.citizen(),
        )
        entries = found.json()["entry"]
        schedules = {
            e["resource"]["id"]: e["resource"]["actor"][0]["identifier"]["value"]
            for e in entries
            if e["search"]["mode"] == "include"
        }
        slot = next(
            e["resource"]
            for e in entries
            if e["search"]["mode"] == "match" and e["resource"]["id"].startswith("region-vast.")
        )
        unit = schedules[slot["schedule"]["reference"].removeprefix("Schedule/")]
        await block(gw, patient_id, unit, level="care-unit")
        refused = await gw.client.post(
            "/fhir/Appointment",
            json=booking(patient_id, slot["id"]),
            headers=gw.citizen() | {"Idempotency-Key": "blocked"},
        )
    assert refused.status_code == 403
    assert "blocked-unit" in refused.text
    assert written.apps["vast"].writes.created == {}


async def test_the_capability_statement_says_what_is_writable(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        statement = (await gw.client.get("/fhir/metadata")).json()
    interactions = {
        r["type"]: {i["code"] for i in r["interaction"]} for r in statement["rest"][0]["resource"]
    }
    for resource_type, writable in WRITABLE.items():
        assert set(writable) <= interactions[resource_type]
    assert {"create", "update", "read", "search-type"} <= interactions["Appointment"]
    assert interactions["Task"] == {"create"}
    assert interactions["Communication"] == {"create"}
    assert interactions["Slot"] == {"search-type"}
