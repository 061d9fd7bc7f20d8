"""Malformed requests get a clear OperationOutcome with the right status, never a 500."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import TEST_PERSON, Gateway

pytestmark = pytest.mark.anyio

PNR_SYSTEM = "http://electronichealth.se/identifier/personnummer"


def assert_outcome(response: object, status: int, code: str) -> None:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "identifier",
    [
        "191212121212",  # no system
        f"{PNR_SYSTEM}|191212121213",  # bad check digit
        f"{PNR_SYSTEM}|19121312-1212",  # no such date
        f"{PNR_SYSTEM}|abc",
        "http://example.org/other|191212121212",
        f"{PNR_SYSTEM}|",
        "|",
    ],
)
async def test_invalid_identifier_is_400_and_not_echoed(gateway: Gateway, identifier: str) -> None:
    response = await gateway.client.get(
        "/fhir/Patient", params={"identifier": identifier}, headers=gateway.citizen()
    )
    assert_outcome(response, 400, "invalid")
    value = identifier.partition("|")[2] or identifier
    if len(value) > 3:
        assert value not in response.text


async def test_missing_parameters_are_400(gateway: Gateway) -> None:
    headers = gateway.citizen()
    assert_outcome(await gateway.client.get("/fhir/Patient", headers=headers), 400, "invalid")
    assert_outcome(await gateway.client.get("/fhir/Observation", headers=headers), 400, "invalid")
    assert_outcome(
        await gateway.client.post("/fhir/Patient/_search", headers=headers), 400, "invalid"
    )


@pytest.mark.parametrize("patient", ["", "a/b", "x" * 65, "Patient/"])
async def test_bad_patient_parameter_is_400(gateway: Gateway, patient: str) -> None:
    response = await gateway.client.get(
        "/fhir/Observation", params={"patient": patient}, headers=gateway.citizen()
    )
    assert_outcome(response, 400, "invalid")


async def test_identity_number_as_patient_id_is_simply_not_found(gateway: Gateway) -> None:
    response = await gateway.client.get(f"/fhir/Patient/{TEST_PERSON}", headers=gateway.citizen())
    assert_outcome(response, 404, "not-found")
    assert TEST_PERSON not in response.text


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"_format": "xml"}, {}),
        ({"_format": "application/fhir+xml"}, {}),
        ({}, {"Accept": "application/fhir+xml"}),
        ({}, {"Accept": "text/html"}),
    ],
)
async def test_unsupported_formats_are_406(
    gateway: Gateway, params: dict[str, str], headers: dict[str, str]
) -> None:
    response = await gateway.client.get("/fhir/metadata", params=params, headers=headers)
    assert_outcome(response, 406, "not-supported")


@pytest.mark.parametrize(
    "accept", ["application/fhir+json", "application/json", "*/*", "application/json, text/plain"]
)
async def test_json_formats_are_served(gateway: Gateway, accept: str) -> None:
    response = await gateway.client.get("/fhir/metadata", headers={"Accept": accept})
    assert response.status_code == 200


async def test_unknown_paths_and_methods(gateway: Gateway) -> None:
    headers = gateway.citizen()
    assert_outcome(await gateway.client.get("/fhir/Nonsense", headers=headers), 404, "not-found")
    assert_outcome(
        await gateway.client.delete("/fhir/Patient/abc", headers=headers), 405, "not-supported"
    )
