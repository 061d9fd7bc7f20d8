"""Building Consent resources and driving the patient's choices through the API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.gateway.conftest import TEST_PERSON, Gateway

HSA = "urn:oid:1.2.752.129.2.1.4.1"
LEVEL = "https://samlad.se/fhir/StructureDefinition/hsa-organisation-level"
ROLES = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
#: The second actor of a guardian block: the patient's guardians.
GUARDIANS = {
    "role": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "code": "GUARD"}
        ]
    },
    "reference": {"display": "vårdnadshavare"},
}


def consent_body(
    patient_id: str,
    hsa_id: str,
    *,
    level: str = "care-provider",
    kind: str = "permit",
    start: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    provision: dict[str, Any] = {
        "type": kind,
        "actor": [
            {
                "role": {
                    "coding": [{"system": ROLES, "code": "IRCP" if kind == "permit" else "CST"}]
                },
                "reference": {
                    "extension": [{"url": LEVEL, "valueCode": level}],
                    "identifier": {"system": HSA, "value": hsa_id},
                },
            }
        ],
    }
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    if period:
        provision["period"] = period
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "provision": provision,
    }


def guardian_block_body(patient_id: str, hsa_id: str, level: str) -> dict[str, Any]:
    """A guardian block of ``hsa_id`` (``level``): a block that also names the guardians."""
    body = consent_body(patient_id, hsa_id, level=level, kind="deny")
    body["provision"]["actor"].append(GUARDIANS)
    return body


async def grant(
    gateway: Gateway, patient_id: str, hsa_id: str, *, person: str = TEST_PERSON, **kwargs: Any
) -> str:
    response = await gateway.client.post(
        "/fhir/Consent",
        json=consent_body(patient_id, hsa_id, **kwargs),
        headers=gateway.citizen(person),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def block(
    gateway: Gateway, patient_id: str, hsa_id: str, *, level: str = "care-provider"
) -> str:
    return await grant(gateway, patient_id, hsa_id, level=level, kind="deny")


async def deactivate(gateway: Gateway, record_id: str, person: str = TEST_PERSON) -> None:
    current = await gateway.client.get(
        f"/fhir/Consent/{record_id}", headers=gateway.citizen(person)
    )
    assert current.status_code == 200, current.text
    body = current.json() | {"status": "inactive"}
    response = await gateway.client.put(
        f"/fhir/Consent/{record_id}", json=body, headers=gateway.citizen(person)
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "inactive"


#: Seals of the person's own online view (docs/consent.md).
ONLINE_ACCESS = "https://samlad.se/fhir/CodeSystem/online-access"
RELEASE_DELAY = "https://samlad.se/fhir/StructureDefinition/release-delay"


def seal_body(
    patient_id: str,
    *,
    hsa_id: str | None = None,
    level: str = "care-provider",
    period: tuple[str, str] | None = None,
    delay_days: int | None = None,
) -> dict[str, Any]:
    """A seal of the person's online view: of ``hsa_id`` (``level``), of the record dates
    ``period``, of the whole record (neither), or delayed release (``delay_days``)."""
    body = consent_body(patient_id, hsa_id or "unused", level=level, kind="deny")
    code = "seal" if delay_days is None else "delayed-release"
    body["category"].append({"coding": [{"system": ONLINE_ACCESS, "code": code}]})
    patient = {
        "role": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "code": "PAT"}
            ]
        },
        "reference": {"reference": f"Patient/{patient_id}"},
    }
    provision = body["provision"]
    provision["actor"] = [patient, *(provision["actor"] if hsa_id else [])]
    if period is not None:
        provision["dataPeriod"] = {"start": period[0], "end": period[1]}
    if delay_days is not None:
        duration = {"value": delay_days, "unit": "d", "system": "http://unitsofmeasure.org"}
        provision["extension"] = [
            {"url": RELEASE_DELAY, "valueDuration": {**duration, "code": "d"}}
        ]
    return body


PROXY_ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
RECORD_CATEGORY = "https://samlad.se/fhir/CodeSystem/record-category"
PNR_SYSTEM = "http://electronichealth.se/identifier/personnummer"


def proxy_body(
    patient_id: str,
    proxy: str,
    *,
    categories: tuple[str, ...] = (),
    types: tuple[str, ...] = (),
    manages: bool = False,
    start: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    """A proxy grant to the person ``proxy`` (by personnummer, in the body), limited to
    ``categories`` and ``types`` if any; ``manages`` lets the proxy manage the choices."""
    body = consent_body(patient_id, "unused", start=start, end=end)
    provision = body["provision"]
    provision["actor"] = [
        {
            "role": {"coding": [{"system": PROXY_ROLE, "code": "HPOWATT"}]},
            "reference": {"identifier": {"system": PNR_SYSTEM, "value": proxy}},
        }
    ]
    classes = [{"system": RECORD_CATEGORY, "code": c} for c in categories]
    classes += [{"system": RESOURCE_TYPES, "code": t} for t in types]
    if classes:
        provision["class"] = classes
    if manages:
        provision["action"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                        "code": "correct",
                    }
                ]
            }
        ]
    return body


async def seal(
    gateway: Gateway, patient_id: str, *, person: str = TEST_PERSON, **kwargs: Any
) -> str:
    """Seal as the person; the seal's id."""
    response = await gateway.client.post(
        "/fhir/Consent", json=seal_body(patient_id, **kwargs), headers=gateway.citizen(person)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def grant_proxy(
    gateway: Gateway, patient_id: str, proxy: str, *, person: str = TEST_PERSON, **kwargs: Any
) -> str:
    """The person grants ``proxy`` a proxy; the grant's id."""
    response = await gateway.client.post(
        "/fhir/Consent",
        json=proxy_body(patient_id, proxy, **kwargs),
        headers=gateway.citizen(person),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def open_emergency(
    gateway: Gateway, patient_id: str, headers: dict[str, str], reason: str
) -> httpx.Response:
    """A clinician (``headers``) opens emergency access to the patient, for ``reason``."""
    return await gateway.client.post(
        f"/fhir/Patient/{patient_id}/$emergency-access",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueString": reason}],
        },
        headers=headers,
    )
