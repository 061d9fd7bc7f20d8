"""Who may see what: every kind of principal against every endpoint with personal data.

Each row of the matrix sets up the facts through the API (consents, blocks, emergency
access), then asserts exactly what each endpoint returns to that principal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from adapters.base import PATIENT_COMPARTMENT_TYPES
from tests.gateway.conftest import (
    CHILD,
    GROWN_CHILD,
    GUARDIAN,
    NORD_PROVIDER,
    TEST_PERSON,
    Gateway,
    follow_pages,
)
from tests.gateway.consent_helpers import deactivate, grant

pytestmark = pytest.mark.anyio

PNR = "http://electronichealth.se/identifier/personnummer"
OTHER_PERSON = "199001011239"
NORD_UNIT = "SE2321009001-MEDM"
OTHER_NORD_UNIT = "SE2321009001-VCNB"
SYD_PROVIDER = "SE2321009003-SYD0"


@dataclass
class Row:
    """One principal with its set-up: who asks about whom, and whether they may read."""

    name: str
    person: str
    allowed: bool
    setup: Callable[[Gateway, str], Awaitable[dict[str, str]]]


async def _citizen_self(gw: Gateway, _: str) -> dict[str, str]:
    return gw.citizen()


async def _other_citizen(gw: Gateway, _: str) -> dict[str, str]:
    return gw.citizen(OTHER_PERSON)


async def _guardian(gw: Gateway, _: str) -> dict[str, str]:
    return gw.citizen(GUARDIAN)


async def _clinician_provider_consent(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_PROVIDER)
    return gw.clinician()


async def _clinician_unit_consent(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_UNIT, level="care-unit")
    return gw.clinician(unit=NORD_UNIT)


async def _clinician_other_unit(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_UNIT, level="care-unit")
    return gw.clinician(unit=OTHER_NORD_UNIT)


async def _clinician_other_provider(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_PROVIDER)
    return gw.clinician(unit="SE2321009003-VCSS", provider=SYD_PROVIDER)


async def _clinician_expired(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_PROVIDER, start="2020-01-01", end="2021-01-01")
    return gw.clinician()


async def _clinician_future(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_PROVIDER, start="2099-01-01")
    return gw.clinician()


async def _clinician_withdrawn(gw: Gateway, patient_id: str) -> dict[str, str]:
    consent = await grant(gw, patient_id, NORD_PROVIDER)
    await deactivate(gw, consent)
    return gw.clinician()


async def _clinician_emergency(gw: Gateway, patient_id: str) -> dict[str, str]:
    headers = gw.clinician()
    response = await gw.client.post(
        f"/fhir/Patient/{patient_id}/$emergency-access",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueString": "Medvetslös på akuten"}],
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return headers


async def _clinician_no_consent(gw: Gateway, _: str) -> dict[str, str]:
    return gw.clinician()


async def _integrator_consent(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_PROVIDER)
    return gw.integrator()


async def _integrator_no_consent(gw: Gateway, _: str) -> dict[str, str]:
    return gw.integrator()


async def _integrator_wrong_context_scope(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_PROVIDER)
    return gw.integrator(scope="user/*.rs patient/*.rs")


ROWS = [
    Row("citizen self", TEST_PERSON, True, _citizen_self),
    Row("other citizen", TEST_PERSON, False, _other_citizen),
    Row("guardian of child under 13", CHILD, True, _guardian),
    Row("guardian of child 13 or older", GROWN_CHILD, False, _guardian),
    Row("clinician, provider consent", TEST_PERSON, True, _clinician_provider_consent),
    Row("clinician, unit consent", TEST_PERSON, True, _clinician_unit_consent),
    Row("clinician, other unit same provider", TEST_PERSON, False, _clinician_other_unit),
    Row("clinician, other provider", TEST_PERSON, False, _clinician_other_provider),
    Row("clinician, expired consent", TEST_PERSON, False, _clinician_expired),
    Row("clinician, consent not yet valid", TEST_PERSON, False, _clinician_future),
    Row("clinician, withdrawn consent", TEST_PERSON, False, _clinician_withdrawn),
    Row("clinician, emergency access", TEST_PERSON, True, _clinician_emergency),
    Row("clinician, no consent", TEST_PERSON, False, _clinician_no_consent),
    Row("integrator, consent", TEST_PERSON, True, _integrator_consent),
    Row("integrator, no consent", TEST_PERSON, False, _integrator_no_consent),
    Row(
        "integrator, scopes of another context", TEST_PERSON, False, _integrator_wrong_context_scope
    ),
]


async def _patient_id(gw: Gateway, person: str) -> str:
    """Look the person up as themselves (which also records them in the index)."""
    response = await gw.client.post(
        "/fhir/Patient/_search", data={"identifier": f"{PNR}|{person}"}, headers=gw.citizen(person)
    )
    assert response.status_code == 200
    return _id_of(response, person)


def _id_of(response: httpx.Response, person: str) -> str:
    patients = [
        e["resource"]
        for e in response.json()["entry"]
        if e["resource"]["resourceType"] == "Patient"
    ]
    assert len(patients) == 1, person
    return str(patients[0]["id"])


def _endpoints(patient_id: str, person: str) -> list[tuple[str, str, dict[str, str] | None]]:
    reads: list[tuple[str, str, dict[str, str] | None]] = [
        ("GET", f"/fhir/Patient/{patient_id}", None),
        ("GET", f"/fhir/Patient/{patient_id}/$everything", None),
        ("POST", "/fhir/Patient/_search", {"identifier": f"{PNR}|{person}"}),
    ]
    reads += [("GET", f"/fhir/{t}?patient={patient_id}", None) for t in PATIENT_COMPARTMENT_TYPES]
    return reads


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
async def test_matrix(gateway: Gateway, row: Row) -> None:
    patient_id = await _patient_id(gateway, row.person)
    headers = await row.setup(gateway, patient_id)
    for method, path, form in _endpoints(patient_id, row.person):
        response = await gateway.client.request(method, path, data=form, headers=headers)
        if not row.allowed:
            assert response.status_code == 403, (path, response.text)
            body = response.text
            assert "Tolvansson" not in body
            assert row.person not in body
            continue
        assert response.status_code == 200, (path, response.text)
        body = response.json()
        if body["resourceType"] == "Bundle":
            matches = await follow_pages(gateway, body, headers)
            assert body["total"] == len(matches), "totals count exactly what the pages hold"
            assert matches, path
            assert len({(r["resourceType"], r["id"]) for r in matches}) == len(matches)
            for resource in matches:
                if resource["resourceType"] != "Patient":
                    refs = str(resource.get("subject") or resource.get("participant"))
                    assert f"Patient/{patient_id}" in refs
        else:
            assert body["id"] == patient_id


async def test_log_lists_every_attempt_allowed_or_denied(gateway: Gateway) -> None:
    patient_id = await _patient_id(gateway, TEST_PERSON)
    refused = await gateway.client.get(f"/fhir/Patient/{patient_id}", headers=gateway.clinician())
    assert refused.status_code == 403
    await grant(gateway, patient_id, NORD_PROVIDER)
    allowed = await gateway.client.get(
        f"/fhir/Observation?patient={patient_id}", headers=gateway.clinician()
    )
    assert allowed.status_code == 200
    log = await gateway.client.get(
        f"/fhir/AuditEvent?patient={patient_id}", headers=gateway.citizen()
    )
    assert log.status_code == 200
    events = [e["resource"] for e in log.json()["entry"]]
    assert TEST_PERSON not in log.text
    # Oldest first: the lookup, the refusal, the consent, the clinician's read.
    summary = [
        (
            next(c["code"] for c in e["subtype"] if c["system"].endswith("audit-action")),
            e["outcome"],
            "SE2321009001-DOC1" in _agent_ids(e),
        )
        for e in events
    ]
    assert summary == [
        ("search", "0", False),
        ("read", "4", True),
        ("consent-create", "0", False),
        ("search", "0", True),
    ]
    clinician_read = events[-1]
    assert "SE2321009001-MEDM" in _agent_ids(clinician_read)
    assert [p["coding"][0]["code"] for p in clinician_read["purposeOfEvent"]] == ["TREAT"]


def _agent_ids(event: dict[str, object]) -> set[str]:
    ids: set[str] = set()
    agents = event.get("agent")
    assert isinstance(agents, list)
    for agent in agents:
        who = agent.get("who", {}).get("identifier", {}).get("value")
        if who:
            ids.add(who)
        location = agent.get("location", {}).get("identifier", {}).get("value")
        if location:
            ids.add(location)
    return ids


async def test_paging_links_serve_only_the_principal_they_were_issued_to(gateway: Gateway) -> None:
    patient_id = await _patient_id(gateway, TEST_PERSON)
    await grant(gateway, patient_id, NORD_PROVIDER)
    first = await gateway.client.get(
        f"/fhir/Observation?patient={patient_id}&_count=5", headers=gateway.clinician()
    )
    assert first.status_code == 200
    (following,) = [link["url"] for link in first.json()["link"] if link["relation"] == "next"]
    assert TEST_PERSON not in following
    assert patient_id not in following, "the cursor hides even the opaque patient id"
    path = following.removeprefix("http://gateway.test")
    assert (await gateway.client.get(path, headers=gateway.clinician())).status_code == 200
    for stranger in (gateway.citizen(OTHER_PERSON), gateway.clinician(hsa_id="SE2321009001-DOC2")):
        refused = await gateway.client.get(path, headers=stranger)
        assert refused.status_code == 400
        assert refused.json()["resourceType"] == "OperationOutcome"
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert (await gateway.client.get(tampered, headers=gateway.clinician())).status_code == 400


async def test_a_withdrawn_consent_stops_paging_at_once(gateway: Gateway) -> None:
    patient_id = await _patient_id(gateway, TEST_PERSON)
    consent = await grant(gateway, patient_id, NORD_PROVIDER)
    first = await gateway.client.get(
        f"/fhir/Observation?patient={patient_id}&_count=5", headers=gateway.clinician()
    )
    (following,) = [link["url"] for link in first.json()["link"] if link["relation"] == "next"]
    await deactivate(gateway, consent)
    response = await gateway.client.get(
        following.removeprefix("http://gateway.test"), headers=gateway.clinician()
    )
    assert response.status_code == 403
