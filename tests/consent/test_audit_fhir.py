"""Access-log entries rendered as FHIR R4 AuditEvents, as the patient's loggutdrag shows them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from consent.audit import AuditLog
from consent.audit_fhir import to_audit_event
from fhir_profiles.codes import ACT_REASON_SYSTEM, DCM_SYSTEM
from fhir_profiles.extensions import EMERGENCY_ACCESS_URL
from fhir_profiles.identifiers import HSA_ID_SYSTEM, parse_person_identifier
from gateway.access.persons import PersonIndex
from store.db import Database
from tests.consent.helpers import CARE_PROVIDER, CARE_UNIT, CLINICIAN, entry

pytestmark = pytest.mark.anyio

BASE_URL = "https://samlad.test.example/fhir"
TOLVAN = parse_person_identifier("191212121212")
#: Every way the test personnummer could leak into the output.
TOLVAN_FORMS = ["191212121212", "19121212-1212", "121212-1212", "1212121212", "121212+1212"]


def _render(event: dict[str, Any]) -> str:
    AuditEvent.model_validate(event)  # a valid R4 (R4B has the same AuditEvent) resource
    return orjson.dumps(event).decode()


async def test_a_clinicians_emergency_read(database_url: str) -> None:
    db = Database(database_url)
    try:
        index = PersonIndex(db, "id-key-0123456789abcdef", "data-key-0123456789abcdef")
        patient_id = await index.remember(TOLVAN)
        stored = await AuditLog(db).append(
            entry(
                patient_id,
                action="read",
                resource_types=["MedicationStatement"],
                returned_count=4,
                returned={"counts": {"MedicationStatement": 4}, "sources": ["region-a", "npl"]},
                purpose="ETREAT",
                emergency=True,
                emergency_reason="Medvetslös, 19121212-1212 enligt anhörig",
            )
        )
    finally:
        await db.dispose()
    event = to_audit_event(stored, base_url=BASE_URL)
    text = _render(event)
    for form in TOLVAN_FORMS:
        assert form not in text

    assert event["id"] == str(stored.seq)
    assert event["type"] == {"system": DCM_SYSTEM, "code": "110110", "display": "Patient Record"}
    assert event["subtype"][0] == {
        "system": "http://hl7.org/fhir/restful-interaction",
        "code": "read",
    }
    assert event["action"] == "R"
    assert event["outcome"] == "0"
    assert event["recorded"].endswith("+00:00")
    assert event["purposeOfEvent"] == [
        {"coding": [{"system": ACT_REASON_SYSTEM, "code": "ETREAT"}]}
    ]

    requestor, unit, provider = event["agent"]
    assert requestor["requestor"] is True
    assert requestor["who"]["identifier"] == {"system": HSA_ID_SYSTEM, "value": CLINICIAN}
    assert unit["who"]["identifier"] == {"system": HSA_ID_SYSTEM, "value": CARE_UNIT}
    assert provider["who"]["identifier"] == {"system": HSA_ID_SYSTEM, "value": CARE_PROVIDER}
    assert not unit["requestor"]

    (entity,) = event["entity"]
    assert entity["what"] == {"reference": f"Patient/{patient_id}"}
    details = {d["type"]: d["valueString"] for d in entity["detail"]}
    assert details["returned-count"] == "4"
    assert details["count:MedicationStatement"] == "4"
    assert details["sources"] == "region-a,npl"

    (emergency,) = [e for e in event["extension"] if e["url"] == EMERGENCY_ACCESS_URL]
    parts = {e["url"]: e for e in emergency["extension"]}
    assert parts["active"]["valueBoolean"] is True
    assert parts["reason"]["valueString"].startswith("Medvetslös, [identitetsnummer borttaget]")
    assert event["source"]["observer"]["identifier"]["value"] == BASE_URL


async def test_a_citizens_own_search_and_a_denied_integrator(database_url: str) -> None:
    patient_id = "c" * 32
    db = Database(database_url)
    try:
        log = AuditLog(db)
        own = await log.append(
            entry(
                patient_id,
                actor_kind="citizen",
                actor_id=patient_id,
                actor_care_unit_hsa_id=None,
                actor_care_provider_hsa_id=None,
                purpose="PATRQT",
            )
        )
        denied = await log.append(
            entry(
                patient_id,
                actor_kind="integrator",
                actor_id="regional-app-7",
                actor_care_unit_hsa_id=None,
                actor_care_provider_hsa_id=None,
                on_behalf_of=CARE_PROVIDER,
                action="everything",
                returned_count=0,
                returned={},
                outcome="denied",
                outcome_reason="no-consent",
            )
        )
    finally:
        await db.dispose()

    mine = to_audit_event(own, base_url=BASE_URL)
    _render(mine)
    assert mine["action"] == "E"
    assert mine["subtype"][0]["code"] == "search-type"
    (agent,) = mine["agent"]
    assert agent["who"]["reference"] == f"Patient/{patient_id}"
    assert all(e["url"] != EMERGENCY_ACCESS_URL for e in mine["extension"])

    theirs = to_audit_event(denied, base_url=BASE_URL)
    _render(theirs)
    assert theirs["outcome"] == "4"
    assert theirs["outcomeDesc"] == "no-consent"
    (agent,) = theirs["agent"]
    assert agent["who"]["identifier"]["value"] == "regional-app-7"
    assert agent["extension"][0]["valueIdentifier"] == {
        "system": HSA_ID_SYSTEM,
        "value": CARE_PROVIDER,
    }
