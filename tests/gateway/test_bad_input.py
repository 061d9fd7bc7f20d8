"""Malformed requests get a clear OperationOutcome with the right status, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.conftest import NORD_PROVIDER, TEST_PERSON, Gateway
from tests.gateway.consent_helpers import consent_body, grant

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
    assert_outcome(await gateway.client.get("/fhir/Observation", headers=headers), 400, "invalid")
    # A Patient search without parameters is a citizen's list of whom they may read
    # (test_proxies.py); for anyone else it is a 400.
    clinician = gateway.clinician()
    assert_outcome(await gateway.client.get("/fhir/Patient", headers=clinician), 400, "invalid")
    assert_outcome(
        await gateway.client.post("/fhir/Patient/_search", headers=clinician), 400, "invalid"
    )
    listed = await gateway.client.get("/fhir/Patient", headers=headers)
    assert listed.status_code == 200
    assert listed.json()["type"] == "searchset"


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


# -- request bodies of the wrong shape: a 4xx naming the element, never a 500 ---------------

#: Put where a wrong-typed value goes, to show that values are never echoed.
MARKER = "Tolvan-191212121212"


def _consent_with(patient_id: str, path: str, value: object) -> dict[str, Any]:
    """A valid consent to Region Nord with the element at ``path`` replaced by ``value``."""
    body = consent_body(patient_id, NORD_PROVIDER)
    *parents, last = path.split(".")
    node: Any = body
    for step in parents:
        node = node[int(step)] if step.isdigit() else node[step]
    node[int(last) if last.isdigit() else last] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("patient", MARKER, "Consent.patient"),
        ("patient", [MARKER], "Consent.patient"),
        ("provision.period", MARKER, "Consent.provision.period"),
        ("provision.actor.0.role", MARKER, "Consent.provision.actor[0].role"),
        ("provision.actor.0.role.coding", 1912121212, "Consent.provision.actor[0].role.coding"),
        ("provision.actor.0.reference.extension", None, "Consent.provision.actor[0].reference"),
        (
            "provision.actor.0.reference.extension.0",
            None,
            "Consent.provision.actor[0].reference.extension[0]",
        ),
        ("provision.actor.0.reference.extension", 5, "Consent.provision.actor[0].reference"),
        ("provision.actor.0.reference.identifier.value", 7, "identifier.value"),
        ("provision.period", {"start": 20260101}, "Consent.provision.period.start"),
        ("status", ["active"], "Consent.status"),
        ("provision", None, "Consent.provision"),
        ("provision.actor", {"role": MARKER}, "Consent.provision.actor"),
    ],
)
async def test_consent_of_the_wrong_shape_is_422_naming_the_element(
    gateway: Gateway, path: str, value: object, named: str
) -> None:
    patient_id = await gateway.patient_id()
    body = _consent_with(patient_id, path, value)
    response = await gateway.client.post("/fhir/Consent", json=body, headers=gateway.citizen())
    assert_outcome(response, 422, "processing")
    assert named in response.json()["issue"][0]["diagnostics"]
    assert MARKER not in response.text
    assert "1912121212" not in response.text
    listed = await gateway.client.get(
        "/fhir/Consent", params={"patient": patient_id}, headers=gateway.citizen()
    )
    assert listed.json()["total"] == 0  # nothing was recorded


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Consent", "id": ["x"], "status": "inactive"},
        {"resourceType": "Consent", "status": {"value": "inactive"}},
        {"resourceType": "Consent", "status": None},
    ],
)
async def test_consent_update_of_the_wrong_shape_is_422(
    gateway: Gateway, body: dict[str, Any]
) -> None:
    patient_id = await gateway.patient_id()
    consent = await grant(gateway, patient_id, NORD_PROVIDER)
    response = await gateway.client.put(
        f"/fhir/Consent/{consent}", json=body, headers=gateway.citizen()
    )
    assert_outcome(response, 422, "processing")
    assert "Consent." in response.json()["issue"][0]["diagnostics"]


def _parameters(parameter: object) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": parameter}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (_parameters(5), "Parameters.parameter"),
        (_parameters(MARKER), "Parameters.parameter"),
        (_parameters([5]), "Parameters.parameter[0]"),
        (_parameters([None]), "Parameters.parameter[0]"),
        (_parameters([{"name": "reason", "valueString": 5}]), "parameter[0].valueString"),
        (_parameters([{"name": 5, "valueString": MARKER}]), "Parameters.parameter[0].name"),
        (_parameters([{"valueString": MARKER}]), "Parameters.parameter[0].name"),
        (
            _parameters([{"name": "reason", "valueString": [MARKER]}]),
            "Parameters.parameter[0].valueString",
        ),
    ],
)
async def test_emergency_parameters_of_the_wrong_shape_are_400(
    gateway: Gateway, body: dict[str, Any], named: str
) -> None:
    patient_id = await gateway.patient_id()
    response = await gateway.client.post(
        f"/fhir/Patient/{patient_id}/$emergency-access", json=body, headers=gateway.clinician()
    )
    assert_outcome(response, 400, "invalid")
    assert named in response.json()["issue"][0]["diagnostics"]
    assert MARKER not in response.text


@pytest.mark.parametrize("first", [{}, {"valueInteger": 5}, {"valueString": "Medvetslös"}])
async def test_a_parameter_given_twice_is_400(gateway: Gateway, first: dict[str, Any]) -> None:
    patient_id = await gateway.patient_id()
    reason = {"name": "reason", "valueString": "Medvetslös patient på akuten"}
    response = await gateway.client.post(
        f"/fhir/Patient/{patient_id}/$emergency-access",
        json=_parameters([{"name": "reason", **first}, reason]),
        headers=gateway.clinician(),
    )
    assert_outcome(response, 400, "invalid")
    assert "more than once" in response.json()["issue"][0]["diagnostics"]


BAD_BODIES = [b"", b"{", b"null", b"[]", b'{"resourceType": "Parameters", "parameter": 5}']


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_who_may_not_open_emergency_access_gets_403_whatever_the_body(
    gateway: Gateway, body: bytes
) -> None:
    patient_id = await gateway.patient_id()
    for headers in (gateway.integrator(), gateway.citizen(), gateway.clinician(scope="openid")):
        response = await gateway.client.post(
            f"/fhir/Patient/{patient_id}/$emergency-access",
            content=body,
            headers=headers | {"Content-Type": "application/fhir+json"},
        )
        assert_outcome(response, 403, "forbidden")


@pytest.mark.parametrize("body", [*BAD_BODIES, b'{"resourceType": "Consent", "patient": "x"}'])
async def test_who_may_not_manage_consents_gets_403_whatever_the_body(
    gateway: Gateway, body: bytes
) -> None:
    patient_id = await gateway.patient_id()
    consent = await grant(gateway, patient_id, NORD_PROVIDER)
    refused = (gateway.integrator(), gateway.clinician(), gateway.citizen(scope="patient/*.rs"))
    for headers in refused:
        for method, path in (("POST", "/fhir/Consent"), ("PUT", f"/fhir/Consent/{consent}")):
            response = await gateway.client.request(
                method,
                path,
                content=body,
                headers=headers | {"Content-Type": "application/fhir+json"},
            )
            assert_outcome(response, 403, "forbidden")


async def test_search_form_bodies_urlencoded_or_multipart_and_nothing_else(
    gateway: Gateway,
) -> None:
    patient_id = await gateway.patient_id()
    headers = gateway.citizen()
    path = "/fhir/Observation/_search"
    form = await gateway.client.post(path, data={"patient": patient_id}, headers=headers)
    assert form.status_code == 200, form.text
    total = form.json()["total"]
    assert total > 0
    multipart = await gateway.client.post(
        path,
        files={"patient": (None, patient_id), "upload": ("a.txt", b"x", "text/plain")},
        headers=headers,
    )
    assert multipart.status_code == 200, multipart.text
    assert multipart.json()["total"] == total
    # A JSON body, or a file where the patient should be, is no search parameters at all.
    as_json = await gateway.client.post(path, json={"patient": patient_id}, headers=headers)
    assert_outcome(as_json, 400, "invalid")
    as_file = await gateway.client.post(
        path, files={"patient": ("p.txt", patient_id.encode(), "text/plain")}, headers=headers
    )
    assert_outcome(as_file, 400, "invalid")
    broken = await gateway.client.post(
        path,
        content=b"--x\r\nContent-Disposition: form-data\r\n\r\n\xff",
        headers=headers | {"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert 400 <= broken.status_code < 500, broken.text
