"""Who may read what, in this first cut: a citizen reads their own data and nobody else's."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import TEST_PERSON, Gateway

pytestmark = pytest.mark.anyio

PNR_SYSTEM = "http://electronichealth.se/identifier/personnummer"
OTHER_PERSON = "199001011239"


async def test_citizen_cannot_search_for_another_person(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/fhir/Patient/_search",
        data={"identifier": f"{PNR_SYSTEM}|{TEST_PERSON}"},
        headers=gateway.citizen(OTHER_PERSON),
    )
    assert response.status_code == 403
    assert response.json()["issue"][0]["code"] == "forbidden"
    assert TEST_PERSON not in response.text


@pytest.mark.parametrize(
    "path",
    ["/fhir/Patient/{id}", "/fhir/Patient/{id}/$everything", "/fhir/Observation?patient={id}"],
)
async def test_citizen_cannot_read_another_persons_record(gateway: Gateway, path: str) -> None:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        path.format(id=patient_id), headers=gateway.citizen(OTHER_PERSON)
    )
    assert response.status_code == 403
    assert TEST_PERSON not in response.text
    assert "Tolvansson" not in response.text


@pytest.mark.parametrize(
    "claims",
    [
        {
            "hsa_id": "SE2321009001-DOC1",
            "care_unit_hsa_id": "SE2321009001-MEDM",
            "care_provider_hsa_id": "SE2321009001-NORD",
        },
        {"client_id": "some-app", "care_provider_hsa_id": "SE2321009001-NORD"},
    ],
    ids=["clinician", "integrator"],
)
async def test_clinicians_and_integrators_are_refused_without_consent(
    gateway: Gateway, claims: dict[str, str]
) -> None:
    patient_id = await gateway.patient_id()
    headers = gateway.auth(gateway.issuer.token(claims))
    for path in (f"/fhir/Patient/{patient_id}", f"/fhir/Patient/{patient_id}/$everything"):
        response = await gateway.client.get(path, headers=headers)
        assert response.status_code == 403
    search = await gateway.client.post(
        "/fhir/Patient/_search", data={"identifier": f"{PNR_SYSTEM}|{TEST_PERSON}"}, headers=headers
    )
    assert search.status_code == 403
