"""Every write an identified principal asks for is in the patient's access log, refused
ones too (its owner not found, what is sent not made of it, its key another write's;
without the body, without an identity number); and a write sent without an
``Idempotency-Key`` is answered as the same request only for a while (its body's digest
is its key): the same message may be sent again the next day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from consent.entries import AUDIT_TABLE
from store.db import Database
from tests.conftest import IssuerKit
from tests.gateway.conftest import TEST_PERSON
from tests.gateway.writes_helpers import Written, booking, first_free, fresh_regions, gateway_over

pytestmark = pytest.mark.anyio

TEXT = "Jag har fått utslag av den nya medicinen."


@pytest.fixture
def written() -> Iterator[Written]:
    yield from fresh_regions()


def message(patient_id: str, unit: str = "region-vast.1002") -> dict[str, Any]:
    return {
        "resourceType": "Communication",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "recipient": [{"reference": f"Organization/{unit}"}],
        "payload": [{"contentString": TEXT}],
    }


async def test_the_same_message_without_a_key_is_sent_again_after_a_day(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        started = gw.services.now()
        for _ in range(2):
            sent = await gw.client.post(
                "/fhir/Communication", json=message(patient_id), headers=gw.citizen()
            )
            assert sent.status_code == 201, sent.text
        assert written.apps["vast"].writes.created == {"Communication": 1}
        status_url = sent.headers["Link"].split(">")[0].removeprefix("<")
        gw.services.clock = lambda: started + timedelta(hours=23)
        again = await gw.client.post(
            "/fhir/Communication", json=message(patient_id), headers=gw.citizen()
        )
        assert again.status_code == 201
        assert written.apps["vast"].writes.created == {"Communication": 1}
        gw.services.clock = lambda: started + timedelta(hours=25)
        later = await gw.client.post(
            "/fhir/Communication", json=message(patient_id), headers=gw.citizen()
        )
        assert later.status_code == 201, later.text
        assert written.apps["vast"].writes.created == {"Communication": 2}
        assert later.headers["Link"] != sent.headers["Link"]
        path = status_url.removeprefix(gw.settings.fhir_base_url)
        first = await gw.client.get(f"/fhir{path}", headers=gw.citizen())
        assert first.status_code == 200, "the first write's status is still there"


async def test_a_clients_own_key_holds_after_a_day(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        started = gw.services.now()
        headers = gw.citizen() | {"Idempotency-Key": "m-1"}
        sent = await gw.client.post(
            "/fhir/Communication", json=message(patient_id), headers=headers
        )
        assert sent.status_code == 201
        gw.services.clock = lambda: started + timedelta(days=30)
        again = await gw.client.post(
            "/fhir/Communication", json=message(patient_id), headers=headers
        )
        assert again.status_code == 201
    assert written.apps["vast"].writes.created == {"Communication": 1}


async def _entries(database_url: str, patient_id: str) -> list[dict[str, Any]]:
    db = Database(database_url)
    try:
        query = select(AUDIT_TABLE).where(
            AUDIT_TABLE.c.patient_id == patient_id,
            AUDIT_TABLE.c.action.in_(["create", "update"]),
        )
        async with db.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings().all()]
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        ("/fhir/Communication", lambda p: message(p, "region-nowhere.1"), 422, "owner-unknown"),
        ("/fhir/Communication", lambda p: message(p, "region-vast.99999"), 404, "no-such-target"),
        (
            "/fhir/Appointment/region-nowhere.5",
            lambda p: {
                "resourceType": "Appointment",
                "id": "region-nowhere.5",
                "status": "cancelled",
                "participant": [{"actor": {"reference": f"Patient/{p}"}, "status": "accepted"}],
            },
            422,
            "owner-unknown",
        ),
    ],
)
async def test_a_write_whose_owner_is_not_found_is_logged_as_refused(
    database_url: str,
    issuer: IssuerKit,
    written: Written,
    path: str,
    body: Any,
    status: int,
    reason: str,
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        send = gw.client.put if path.startswith("/fhir/Appointment/") else gw.client.post
        response = await send(path, json=body(patient_id), headers=gw.citizen())
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    (entry,) = await _entries(database_url, patient_id)
    assert (entry["outcome"], entry["outcome_reason"]) == ("denied", reason)
    text = orjson.dumps(entry, default=str).decode()
    assert TEST_PERSON not in text
    assert "utslag" not in text
    assert written.apps["vast"].writes.created == {}


async def test_a_write_refused_as_it_is_shaped_is_logged_as_refused(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        slot = await first_free(gw, "vast")
        made = await gw.client.post(
            "/fhir/Appointment", json=booking(patient_id, slot["id"]), headers=gw.citizen()
        )
        assert made.status_code == 201, made.text
        appointment = made.json()
        # A status other than cancelled: not a change the gateway sends on.
        fulfilled = appointment | {"status": "fulfilled"}
        refused = await gw.client.put(
            f"/fhir/Appointment/{appointment['id']}", json=fulfilled, headers=gw.citizen()
        )
    assert refused.status_code == 422, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    outcomes = [(e["action"], e["outcome"], e["outcome_reason"]) for e in await _entries(
        database_url, patient_id
    )]  # fmt: skip
    assert outcomes == [("create", "allowed", "self"), ("update", "denied", "invalid-input")]
    stored = written.apps["vast"].store.read("Appointment", appointment["id"].split(".", 1)[1])
    assert stored is not None
    assert orjson.loads(stored.body)["status"] == "booked"  # nothing was sent


async def test_a_key_used_for_another_write_is_logged_as_refused(
    database_url: str, issuer: IssuerKit, written: Written
) -> None:
    async with gateway_over(database_url, issuer, written) as gw:
        patient_id = await gw.patient_id()
        headers = gw.citizen() | {"Idempotency-Key": "one-key"}
        first = await gw.client.post(
            "/fhir/Communication", json=message(patient_id), headers=headers
        )
        other = message(patient_id) | {"payload": [{"contentString": "Ett annat meddelande."}]}
        second = await gw.client.post("/fhir/Communication", json=other, headers=headers)
    assert first.status_code == 201, first.text
    assert second.status_code == 422
    assert "Idempotency-Key" in second.json()["issue"][0]["diagnostics"]
    outcomes = [(e["outcome"], e["outcome_reason"]) for e in await _entries(
        database_url, patient_id
    )]  # fmt: skip
    assert outcomes == [("allowed", "self"), ("denied", "idempotency-key-reused")]
    assert written.apps["vast"].writes.created == {"Communication": 1}
