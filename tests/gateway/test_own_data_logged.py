"""No log entry, no data: what a person records or deletes of their own is committed with
its access log entry or not at all, and a create refused once the patient is known is
logged as refused (without the body and without an identity number)."""

from __future__ import annotations

import anyio
import orjson
import pytest
from sqlalchemy import select

from consent.entries import AUDIT_TABLE
from store.db import Database
from store.tables import OwnResource
from tests.gateway.conftest import TEST_PERSON, Gateway
from tests.gateway.test_consent_logged import failing_log, logged, rows
from tests.gateway.test_own_data import _own_in_everything, _record, blood_pressure

pytestmark = pytest.mark.anyio


async def test_no_own_resource_is_stored_when_its_entry_cannot_be_written(
    gateway: Gateway, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient_id = await gateway.patient_id()
    headers = gateway.citizen() | {"Idempotency-Key": "bp-1"}
    with failing_log(monkeypatch):
        response = await gateway.client.post(
            "/fhir/Observation", json=blood_pressure(patient_id), headers=headers
        )
    assert response.status_code == 503
    assert response.json()["resourceType"] == "OperationOutcome"
    assert await rows(db, OwnResource, patient_id) == []
    assert await logged(db, patient_id, "own-data-create") == 0
    again = await gateway.client.post(
        "/fhir/Observation", json=blood_pressure(patient_id), headers=headers
    )
    assert again.status_code == 201, "the key was not taken by the write that failed"
    assert len(await rows(db, OwnResource, patient_id)) == 1
    assert await logged(db, patient_id, "own-data-create") == 1


async def test_an_own_resource_is_not_deleted_when_its_entry_cannot_be_written(
    gateway: Gateway, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient_id = await gateway.patient_id()
    made = await _record(gateway, patient_id)
    with failing_log(monkeypatch):
        response = await gateway.client.delete(
            f"/fhir/Observation/{made['id']}", headers=gateway.citizen()
        )
    assert response.status_code == 503
    assert [r["id"] for r in await _own_in_everything(gateway, patient_id, gateway.citizen())] == [
        made["id"]
    ]
    assert await logged(db, patient_id, "own-data-delete") == 0


async def test_a_retried_create_racing_its_original_makes_one_resource(
    gateway: Gateway, db: Database
) -> None:
    patient_id = await gateway.patient_id()
    statuses: list[int] = []

    async def post(headers: dict[str, str]) -> None:
        body = blood_pressure(patient_id)
        if "If-None-Exist" in headers:
            body |= {"identifier": [{"system": "urn:uuid:device", "value": "reading-7"}]}
        response = await gateway.client.post("/fhir/Observation", json=body, headers=headers)
        statuses.append(response.status_code)

    keyed = gateway.citizen() | {"Idempotency-Key": "bp-race"}
    conditional = gateway.citizen() | {"If-None-Exist": "identifier=urn:uuid:device|reading-7"}
    async with anyio.create_task_group() as group:
        for headers in (keyed, keyed, keyed, conditional, conditional):
            group.start_soon(post, headers)
    assert set(statuses) <= {200, 201}
    assert len(await rows(db, OwnResource, patient_id)) == 2  # one per key, one per identifier


async def test_a_refused_measurement_is_logged_as_refused_without_its_body(
    gateway: Gateway, db: Database
) -> None:
    patient_id = await gateway.patient_id()
    body = blood_pressure(patient_id, systolic=9000.5)
    response = await gateway.client.post("/fhir/Observation", json=body, headers=gateway.citizen())
    assert response.status_code == 422
    query = select(AUDIT_TABLE).where(
        AUDIT_TABLE.c.patient_id == patient_id, AUDIT_TABLE.c.action == "own-data-create"
    )
    async with db.connect() as conn:
        (entry,) = (await conn.execute(query)).mappings().all()
    assert (entry["outcome"], entry["outcome_reason"]) == ("denied", "invalid-input")
    text = orjson.dumps(dict(entry), default=str).decode()
    assert TEST_PERSON not in text
    assert "9000.5" not in text  # a decimal point: no chance match in a hash
    assert await rows(db, OwnResource, patient_id) == []
