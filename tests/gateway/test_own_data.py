"""What a person records themselves: stored as their own source, served in their record
with its provenance, shown to care staff only under consent, never in another person's
record, written once however often a request is retried, and deletable by the person."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fhir_profiles.own_data import INFORMATION_SOURCE_SYSTEM, SYMPTOM_FORM_URL
from tests.gateway.conftest import GUARDIAN, NORD_PROVIDER, Gateway, follow_pages
from tests.gateway.consent_helpers import grant

pytestmark = pytest.mark.anyio

OTHER_PERSON = GUARDIAN  # another adult the regions know
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def blood_pressure(patient_id: str, systolic: float = 128, diastolic: float = 84) -> dict[str, Any]:
    def component(code: str, value: float) -> dict[str, Any]:
        return {
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
        }

    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2024-03-01T08:30:00+01:00",
        "component": [component("8480-6", systolic), component("8462-4", diastolic)],
    }


def symptoms(patient_id: str, image: bytes | None = None) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        {"linkId": "symptom", "answer": [{"valueString": "Hosta och halsont i tre dagar"}]},
        {"linkId": "fever", "answer": [{"valueBoolean": True}]},
    ]
    if image is not None:
        attachment = {"contentType": "image/png", "data": base64.b64encode(image).decode()}
        items.append({"linkId": "photo", "answer": [{"valueAttachment": attachment}]})
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": SYMPTOM_FORM_URL,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "item": items,
    }


async def _record(gw: Gateway, patient_id: str, **headers: str) -> dict[str, Any]:
    response = await gw.client.post(
        "/fhir/Observation", json=blood_pressure(patient_id), headers=gw.citizen() | headers
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"].endswith(f"/Observation/{response.json()['id']}")
    return dict(response.json())


async def _own_in_everything(gw: Gateway, patient_id: str, headers: dict[str, str]) -> list[Any]:
    response = await gw.client.get(
        f"/fhir/Patient/{patient_id}/$everything?_count=1000", headers=headers
    )
    assert response.status_code == 200, response.text
    matches = await follow_pages(gw, response.json(), headers)
    return [r for r in matches if r["id"].startswith("patient-reported.")]


async def test_a_recorded_blood_pressure_is_in_the_own_record_as_reported_by_the_patient(
    gateway: Gateway,
) -> None:
    patient_id = await gateway.patient_id()
    made = await _record(gateway, patient_id)
    assert made["performer"] == [{"reference": f"Patient/{patient_id}"}]
    assert made["meta"]["source"].startswith("urn:samlad:source:patient-reported#Observation/")
    assert {"system": INFORMATION_SOURCE_SYSTEM, "code": "patient-reported"}.items() <= made[
        "meta"
    ]["tag"][0].items()
    (own,) = await _own_in_everything(gateway, patient_id, gateway.citizen())
    assert own == made
    search = await gateway.client.get(
        f"/fhir/Observation?patient={patient_id}&_count=1000", headers=gateway.citizen()
    )
    assert made["id"] in search.text
    assert "patient-reported" in search.text  # the own source's status entry
    read = await gateway.client.get(f"/fhir/Observation/{made['id']}", headers=gateway.citizen())
    assert read.status_code == 200
    assert read.json()["id"] == made["id"]


async def test_a_clinician_sees_it_only_with_consent_and_another_person_never(
    gateway: Gateway,
) -> None:
    patient_id = await gateway.patient_id()
    made = await _record(gateway, patient_id)
    refused = await gateway.client.get(
        f"/fhir/Observation/{made['id']}", headers=gateway.clinician()
    )
    assert refused.status_code == 403
    await grant(gateway, patient_id, NORD_PROVIDER)
    (seen,) = await _own_in_everything(gateway, patient_id, gateway.clinician())
    assert seen["id"] == made["id"]
    other = gateway.citizen(OTHER_PERSON)
    other_id = await gateway.patient_id(OTHER_PERSON)
    assert await _own_in_everything(gateway, other_id, other) == []
    stranger = await gateway.client.get(f"/fhir/Observation/{made['id']}", headers=other)
    assert stranger.status_code == 403
    deleting = await gateway.client.delete(f"/fhir/Observation/{made['id']}", headers=other)
    assert deleting.status_code == 403
    by_clinician = await gateway.client.delete(
        f"/fhir/Observation/{made['id']}", headers=gateway.clinician()
    )
    assert by_clinician.status_code == 403


async def test_a_retried_create_makes_one_resource(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    first = await _record(gateway, patient_id, **{"Idempotency-Key": "bp-2024-03-01"})
    again = await _record(gateway, patient_id, **{"Idempotency-Key": "bp-2024-03-01"})
    assert again["id"] == first["id"]
    body = blood_pressure(patient_id) | {
        "identifier": [{"system": "urn:uuid:device", "value": "reading-1"}]
    }
    headers = gateway.citizen() | {"If-None-Exist": "identifier=urn:uuid:device|reading-1"}
    made = await gateway.client.post("/fhir/Observation", json=body, headers=headers)
    assert made.status_code == 201
    found = await gateway.client.post("/fhir/Observation", json=body, headers=headers)
    assert found.status_code == 200
    assert found.json()["id"] == made.json()["id"]
    assert len(await _own_in_everything(gateway, patient_id, gateway.citizen())) == 2


async def test_the_person_deletes_what_they_recorded_and_it_is_logged(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    made = await _record(gateway, patient_id)
    gone = await gateway.client.delete(f"/fhir/Observation/{made['id']}", headers=gateway.citizen())
    assert gone.status_code == 204
    assert await _own_in_everything(gateway, patient_id, gateway.citizen()) == []
    again = await gateway.client.delete(
        f"/fhir/Observation/{made['id']}", headers=gateway.citizen()
    )
    assert again.status_code == 404
    log = await gateway.client.get(
        f"/fhir/AuditEvent?patient={patient_id}", headers=gateway.citizen()
    )
    actions = {
        c["code"]
        for e in log.json()["entry"]
        for c in e["resource"]["subtype"]
        if "audit" in c["system"]
    }
    assert {"own-data-create", "own-data-delete"} <= actions


async def test_an_answered_symptom_form_with_a_photo(gateway: Gateway) -> None:
    assert (await gateway.client.get("/fhir/Questionnaire/symptom-form")).status_code == 401
    form = await gateway.client.get("/fhir/Questionnaire/symptom-form", headers=gateway.citizen())
    assert form.status_code == 200
    assert form.json()["url"] == SYMPTOM_FORM_URL
    listed = await gateway.client.get(
        f"/fhir/Questionnaire?url={SYMPTOM_FORM_URL}", headers=gateway.clinician()
    )
    assert listed.json()["total"] == 1
    patient_id = await gateway.patient_id()
    response = await gateway.client.post(
        "/fhir/QuestionnaireResponse", json=symptoms(patient_id, PNG), headers=gateway.citizen()
    )
    assert response.status_code == 201, response.text
    answered = response.json()
    assert answered["author"] == {"reference": f"Patient/{patient_id}"}
    photo = answered["item"][-1]["answer"][0]["valueAttachment"]
    assert photo["size"] == len(PNG)
    (own,) = await _own_in_everything(gateway, patient_id, gateway.citizen())
    assert own == answered
    refused = await gateway.client.get(
        f"/fhir/QuestionnaireResponse/{answered['id']}", headers=gateway.clinician()
    )
    assert refused.status_code == 403
    await grant(gateway, patient_id, NORD_PROVIDER)
    read = await gateway.client.get(
        f"/fhir/QuestionnaireResponse/{answered['id']}", headers=gateway.clinician()
    )
    assert read.status_code == 200
    assert read.json()["item"][0]["answer"] == [{"valueString": "Hosta och halsont i tre dagar"}]
    (seen,) = await _own_in_everything(gateway, patient_id, gateway.clinician())
    assert seen["id"] == answered["id"]
    gone = await gateway.client.delete(
        f"/fhir/QuestionnaireResponse/{answered['id']}", headers=gateway.citizen()
    )
    assert gone.status_code == 204


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (lambda b, p: b | {"subject": {"reference": "Patient/someone-else"}}, 403),
        (lambda b, p: b | {"code": {"coding": [{"system": LOINC, "code": "2345-7"}]}}, 422),
        (lambda b, p: b | {"category": []}, 422),
        (lambda b, p: b | {"text": {"status": "generated", "div": "<script>x</script>"}}, 422),
        (lambda b, p: b | {"effectiveDateTime": "2999-01-01T00:00:00Z"}, 422),
        (lambda b, p: b | {"note": [{"text": "a\x00b"}]}, 422),
        (lambda b, p: b | {"resourceType": "Patient"}, 400),
        (lambda b, p: blood_pressure(p, systolic=9000), 422),
    ],
)
async def test_bad_measurements_are_refused_with_an_outcome(
    gateway: Gateway, change: Any, status: int
) -> None:
    patient_id = await gateway.patient_id()
    body = change(blood_pressure(patient_id), patient_id)
    response = await gateway.client.post("/fhir/Observation", json=body, headers=gateway.citizen())
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_malformed_oversized_and_wrong_unit_input(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    citizen = gateway.citizen() | {"Content-Type": "application/fhir+json"}
    malformed = await gateway.client.post("/fhir/Observation", content=b"{nope", headers=citizen)
    assert malformed.status_code == 400
    body = blood_pressure(patient_id)
    body["component"][0]["valueQuantity"]["code"] = "kPa"
    assert (
        await gateway.client.post("/fhir/Observation", json=body, headers=gateway.citizen())
    ).status_code == 422
    cap = gateway.settings.own_data_max_attachment_bytes
    big = symptoms(patient_id, PNG + b"\x00" * cap)
    too_big = await gateway.client.post(
        "/fhir/QuestionnaireResponse", json=big, headers=gateway.citizen()
    )
    assert too_big.status_code == 413
    not_png = symptoms(patient_id, b"GIF89a" + b"\x00" * 10)
    refused = await gateway.client.post(
        "/fhir/QuestionnaireResponse", json=not_png, headers=gateway.citizen()
    )
    assert refused.status_code == 422
    assert refused.json()["resourceType"] == "OperationOutcome"


async def test_the_capability_statement_says_who_accepts_create_and_delete(
    gateway: Gateway,
) -> None:
    statement = (await gateway.client.get("/fhir/metadata")).json()
    kinds = {
        r["type"]: {i["code"] for i in r.get("interaction", [])}
        for r in statement["rest"][0]["resource"]
    }
    assert {"create", "delete"} <= kinds["Observation"]
    assert {"create", "delete"} <= kinds["QuestionnaireResponse"]
    assert "read" in kinds["Questionnaire"]
