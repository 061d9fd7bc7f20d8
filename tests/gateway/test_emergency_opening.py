"""$emergency-access: no opening without its access-log entry, one rule for the reason."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

import consent.audit
from consent.entries import AUDIT_TABLE
from consent.errors import AccessLogUnavailable
from fhir_profiles.identifiers import PERSONNUMMER_SYSTEM
from store.db import Database
from store.tables import EmergencyAccess
from tests.gateway.conftest import TEST_PERSON, Gateway

pytestmark = pytest.mark.anyio


def parameters(reason: str, override: str | None = None) -> dict[str, Any]:
    values = [{"name": "reason", "valueString": reason}]
    if override is not None:
        values.append({"name": "blockOverrideReason", "valueString": override})
    return {"resourceType": "Parameters", "parameter": values}


async def openings(db: Database, patient_id: str) -> list[Any]:
    table = EmergencyAccess.__table__  # type: ignore[attr-defined]
    async with db.connect() as conn:
        query = select(table).where(table.c.patient_id == patient_id)
        return list((await conn.execute(query)).all())


async def logged_openings(db: Database, patient_id: str) -> list[Any]:
    query = select(AUDIT_TABLE).where(
        AUDIT_TABLE.c.patient_id == patient_id, AUDIT_TABLE.c.action == "emergency-open"
    )
    async with db.connect() as conn:
        return list((await conn.execute(query)).mappings().all())


async def open_emergency(gateway: Gateway, patient_id: str, body: dict[str, Any]) -> Any:
    return await gateway.client.post(
        f"/fhir/Patient/{patient_id}/$emergency-access", json=body, headers=gateway.clinician()
    )


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (parameters("\x00\x00\x00\x00"), "reason"),
        (parameters("\u200b\u200b\u200b\u200b"), "reason"),
        (parameters("\ufeff\u200d\u200c\u2060\u00ad"), "reason"),
        (parameters("Hjärtstopp", "\x00\u200b\x00\u200b"), "blockOverrideReason"),
    ],
    ids=["nul", "zero-width-spaces", "format-characters", "blank-override"],
)
async def test_a_reason_with_nothing_visible_is_refused_and_nothing_is_stored(
    gateway: Gateway, db: Database, body: dict[str, Any], named: str
) -> None:
    patient_id = await gateway.patient_id()
    response = await open_emergency(gateway, patient_id, body)
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "invalid"
    assert outcome["issue"][0]["diagnostics"].startswith(f"{named}: ")
    assert await openings(db, patient_id) == []
    assert await logged_openings(db, patient_id) == []
    later = await gateway.client.get(f"/fhir/Patient/{patient_id}", headers=gateway.clinician())
    assert later.status_code == 403, "no consent and no emergency access"


async def test_a_reason_is_kept_redacted_in_the_opening_and_in_its_entry_alike(
    gateway: Gateway, db: Database
) -> None:
    patient_id = await gateway.patient_id()
    reason = f"Medvetslös\x00 pnr {TEST_PERSON}\u200b, enligt anhörig (19121212-1212)"
    response = await open_emergency(
        gateway, patient_id, parameters(reason, "Fara för liv, 121212-1212")
    )
    assert response.status_code == 200, response.text
    (opening,) = await openings(db, patient_id)
    (logged,) = await logged_openings(db, patient_id)
    expected = (
        "Medvetslös pnr [identitetsnummer borttaget], enligt anhörig ([identitetsnummer borttaget])"
    )
    assert opening.reason == logged["emergency_reason"] == expected
    assert opening.block_override_reason == "Fara för liv, [identitetsnummer borttaget]"
    # Every read during the opening is logged with that reason, and answered.
    read = await gateway.client.get(f"/fhir/Patient/{patient_id}", headers=gateway.clinician())
    assert read.status_code == 200, read.text
    log = await gateway.client.get(
        f"/fhir/AuditEvent?patient={patient_id}", headers=gateway.citizen()
    )
    assert log.status_code == 200
    # The number in any of its written forms (a shorter digit run can occur in a hash).
    assert "121212-1212" not in log.text
    assert "1212121212" not in log.text


async def test_no_opening_is_stored_when_its_log_entry_cannot_be_written(
    gateway: Gateway, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log append fails inside the transaction that already holds the opening."""
    patient_id = await gateway.patient_id()
    insert_at_head = consent.audit._insert_at_head

    async def failing(conn: AsyncConnection, batch: Any) -> Any:
        await insert_at_head(conn, batch)
        raise AccessLogUnavailable("the access log is unavailable")

    monkeypatch.setattr(consent.audit, "_insert_at_head", failing)
    response = await open_emergency(gateway, patient_id, parameters("Hjärtstopp"))
    monkeypatch.undo()
    assert response.status_code == 503
    assert response.json()["issue"][0]["code"] == "transient"
    assert await openings(db, patient_id) == []
    assert await logged_openings(db, patient_id) == []
    later = await gateway.client.get(f"/fhir/Patient/{patient_id}", headers=gateway.clinician())
    assert later.status_code == 403, "the failed opening grants nothing"


def by_identifier(personnummer: str, reason: str = "Medvetslös, kan inte samtycka") -> Any:
    identifier = f"{PERSONNUMMER_SYSTEM}|{personnummer}"
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "identifier", "valueString": identifier},
            {"name": "reason", "valueString": reason},
        ],
    }


async def test_a_clinician_without_consent_opens_by_identity_number_and_then_reads(
    gateway: Gateway, db: Database
) -> None:
    """A patient a clinician cannot find without consent: named by identity number in
    the body, the opening answers the patient's id, and the record reads."""
    found = await gateway.client.post(
        "/fhir/Patient/_search",
        data={"identifier": f"{PERSONNUMMER_SYSTEM}|{TEST_PERSON}"},
        headers=gateway.clinician(),
    )
    assert found.status_code == 403, "no consent: the search gives nothing"
    response = await gateway.client.post(
        "/fhir/Patient/$emergency-access",
        json=by_identifier(TEST_PERSON),
        headers=gateway.clinician(),
    )
    assert response.status_code == 200, response.text
    assert TEST_PERSON not in response.text
    values = {p["name"]: p for p in response.json()["parameter"]}
    patient_id = await gateway.patient_id()
    assert values["patient"]["valueReference"] == {"reference": f"Patient/{patient_id}"}
    assert values["blocksLifted"]["valueBoolean"] is False
    assert len(await openings(db, patient_id)) == 1
    (entry,) = await logged_openings(db, patient_id)
    assert entry["emergency"]
    read = await gateway.client.get(f"/fhir/Patient/{patient_id}", headers=gateway.clinician())
    assert read.status_code == 200


@pytest.mark.parametrize(
    ("principal", "status"),
    [("citizen", 403), ("integrator", 403), ("clinician without user scopes", 403)],
)
async def test_who_may_not_open_is_refused_by_identity_number_before_the_body_is_read(
    gateway: Gateway, db: Database, principal: str, status: int
) -> None:
    headers = {
        "citizen": gateway.citizen(),
        "integrator": gateway.integrator(),
        "clinician without user scopes": gateway.clinician(scope="patient/*.rs"),
    }[principal]
    response = await gateway.client.post(
        "/fhir/Patient/$emergency-access", content=b"not even JSON", headers=headers
    )
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert await openings(db, await gateway.patient_id()) == []


@pytest.mark.parametrize(
    "identifier",
    [
        None,
        "",
        f"{PERSONNUMMER_SYSTEM}|191212121213",  # a wrong check digit
        f"urn:oid:1.2.3|{TEST_PERSON}",  # not a Swedish person identifier system
        TEST_PERSON,  # no system
    ],
    ids=["missing", "empty", "check-digit", "other-system", "no-system"],
)
async def test_a_bad_identity_number_is_a_400_that_never_repeats_it(
    gateway: Gateway, db: Database, identifier: str | None
) -> None:
    body = by_identifier(TEST_PERSON)
    body["parameter"] = [p for p in body["parameter"] if p["name"] != "identifier"]
    if identifier is not None:
        body["parameter"].append({"name": "identifier", "valueString": identifier})
    response = await gateway.client.post(
        "/fhir/Patient/$emergency-access", json=body, headers=gateway.clinician()
    )
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "19121212121" not in response.text
    assert await openings(db, await gateway.patient_id()) == []
