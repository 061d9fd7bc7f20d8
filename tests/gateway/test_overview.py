"""The unified overview from three real regions: one Bundle, every source accounted for."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_profiles.extensions import SOURCE_STATUS_URL
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES, REFERENCED_TYPES
from tests.gateway.conftest import TEST_PERSON, Gateway, follow_pages

pytestmark = pytest.mark.anyio

PNR_SYSTEM = "http://electronichealth.se/identifier/personnummer"
SERVED_TYPES = PATIENT_COMPARTMENT_TYPES


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]


def source_status(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """source id -> the data in its source-status extension (a count per type, such as
    ``unsupported``, as a dict of type -> count)."""
    outcomes = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1
    status: dict[str, dict[str, Any]] = {}
    for issue in outcomes[0]["issue"]:
        # Beside it, a source's issue carries its coverage; notices carry no status.
        found = [e for e in issue.get("extension", []) if e["url"] == SOURCE_STATUS_URL]
        if not found:
            continue
        (ext,) = found
        values: dict[str, Any] = {}
        for e in ext["extension"]:
            if "extension" in e:
                parts = {
                    p["url"]: next(v for k, v in p.items() if k.startswith("value"))
                    for p in e["extension"]
                }
                values.setdefault(e["url"], {})[parts["type"]] = parts["count"]
            else:
                values[e["url"]] = next(v for k, v in e.items() if k.startswith("value"))
        status[values["source"]] = values | {"severity": issue["severity"]}
    return status


async def test_patient_search_by_identifier_get_and_post(gateway: Gateway) -> None:
    headers = gateway.citizen()
    get = await gateway.client.get(
        "/fhir/Patient", params={"identifier": f"{PNR_SYSTEM}|{TEST_PERSON}"}, headers=headers
    )
    post = await gateway.client.post(
        "/fhir/Patient/_search", data={"identifier": f"{PNR_SYSTEM}|{TEST_PERSON}"}, headers=headers
    )
    assert get.status_code == post.status_code == 200
    assert get.headers["content-type"].startswith("application/fhir+json")
    (patient,) = matches(get.json())
    (again,) = matches(post.json())
    assert patient["id"] == again["id"]
    # Opaque: never the identity number, and stable across requests.
    assert TEST_PERSON not in patient["id"]
    assert "1212" not in patient["id"]
    assert {"system": PNR_SYSTEM, "value": TEST_PERSON} in patient["identifier"]
    assert patient["name"][0]["family"] == "Tolvansson"
    self_link = get.json()["link"][0]["url"]
    assert TEST_PERSON not in self_link
    assert all(s["status"] == "ok" for s in source_status(get.json()).values())


async def test_other_identifier_forms_find_the_same_patient(gateway: Gateway) -> None:
    headers = gateway.citizen()
    ids = set()
    for value in ("191212121212", "19121212-1212", "121212+1212"):
        response = await gateway.client.post(
            "/fhir/Patient/_search", data={"identifier": f"{PNR_SYSTEM}|{value}"}, headers=headers
        )
        assert response.status_code == 200
        ids.add(matches(response.json())[0]["id"])
    assert len(ids) == 1


async def test_everything_gathers_all_three_regions(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
    )
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["type"] == "searchset"
    resources = matches(bundle)
    assert resources[0]["resourceType"] == "Patient"
    assert bundle["total"] == len(resources)
    by_source: dict[str, int] = {}
    ids = set()
    for resource in resources[1:]:
        source = resource["meta"]["source"]
        assert source.startswith("urn:samlad:source:region-")
        by_source[source.split(":")[-1].split("#")[0]] = by_source.get(source, 0) + 1
        ids.add((resource["resourceType"], resource["id"]))
    assert set(by_source) == {"region-nord", "region-vast", "region-syd"}
    assert len(ids) == len(resources) - 1, "ids collide between sources"
    assert {r["resourceType"] for r in resources[1:]} == set(SERVED_TYPES)
    status = source_status(bundle)
    assert set(status) == {"region-nord", "region-vast", "region-syd"}
    for source_id, values in status.items():
        assert values["status"] == "ok"
        assert values["answeredAt"].endswith("Z")
        shown = sum(
            1
            for r in resources[1:]
            if r["meta"]["source"].split(":")[-1].startswith(source_id + "#")
        )
        merged = sum(
            1
            for r in resources[1:]
            for e in r.get("extension", [])
            if e["url"].endswith("also-reported-by") and f":{source_id}#" in e["valueUri"]
        )
        assert values["resourceCount"] == shown + merged
    # References to the source patients now point at the unified Patient.
    for resource in resources[1:]:
        if resource["resourceType"] in ("AllergyIntolerance", "Immunization"):
            assert resource["patient"]["reference"] == f"Patient/{patient_id}"
        elif resource["resourceType"] != "Appointment":
            assert resource["subject"]["reference"] == f"Patient/{patient_id}"


@pytest.mark.parametrize("resource_type", SERVED_TYPES)
async def test_type_search_returns_only_that_type(gateway: Gateway, resource_type: str) -> None:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        f"/fhir/{resource_type}", params={"patient": patient_id}, headers=gateway.citizen()
    )
    assert response.status_code == 200
    resources = matches(response.json())
    assert resources
    assert {r["resourceType"] for r in resources} == {resource_type}
    also = await gateway.client.get(
        f"/fhir/{resource_type}",
        params={"patient": f"Patient/{patient_id}"},
        headers=gateway.citizen(),
    )
    assert [r["id"] for r in matches(also.json())] == [r["id"] for r in resources]


async def test_paged_region_is_read_to_the_end(gateway: Gateway) -> None:
    """Region Nord pages by 10: the gateway follows every next link."""
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        "/fhir/Observation", params={"patient": patient_id}, headers=gateway.citizen()
    )
    status = source_status(response.json())
    assert status["region-nord"]["resourceCount"] > 10


async def test_read_patient(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(f"/fhir/Patient/{patient_id}", headers=gateway.citizen())
    assert response.status_code == 200
    assert response.json()["id"] == patient_id
    assert response.json()["resourceType"] == "Patient"


async def test_unknown_patient_is_not_found(gateway: Gateway) -> None:
    response = await gateway.client.get("/fhir/Patient/nosuchid", headers=gateway.citizen())
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_person_unknown_to_every_region_gets_an_empty_bundle(gateway: Gateway) -> None:
    unknown = "199001011239"  # valid check digit, not in any region
    response = await gateway.client.post(
        "/fhir/Patient/_search",
        data={"identifier": f"{PNR_SYSTEM}|{unknown}"},
        headers=gateway.citizen(unknown),
    )
    assert response.status_code == 200
    assert matches(response.json()) == []
    assert all(s["status"] == "no-data" for s in source_status(response.json()).values())


async def test_metadata_is_true_to_the_routes(gateway: Gateway) -> None:
    response = await gateway.client.get("/fhir/metadata")
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(resources) == {
        "Patient",
        "Consent",
        "AuditEvent",
        "Group",
        "Subscription",
        "Questionnaire",
        "QuestionnaireResponse",
        "Slot",
        "Task",
        "Communication",
        *SERVED_TYPES,
        *REFERENCED_TYPES,
    }
    assert {i["code"] for i in resources["Subscription"]["interaction"]} == {
        "create",
        "delete",
        "read",
        "search-type",
    }
    assert {i["code"] for i in resources["Patient"]["interaction"]} == {"read", "search-type"}
    # A person records and deletes their own measurements, books and moves appointments.
    written = {"Observation": {"create", "delete"}, "Appointment": {"create", "update"}}
    for resource_type in SERVED_TYPES:
        interactions = {i["code"] for i in resources[resource_type]["interaction"]}
        assert interactions == {"read", "search-type"} | written.get(resource_type, set())
    for resource_type, asked in (("Task", "create"), ("Communication", "create")):
        assert {i["code"] for i in resources[resource_type]["interaction"]} == {asked}
    assert {i["code"] for i in resources["Slot"]["interaction"]} == {"search-type"}
    own_forms = {i["code"] for i in resources["QuestionnaireResponse"]["interaction"]}
    assert own_forms == {"create", "delete", "read"}
    forms = {i["code"] for i in resources["Questionnaire"]["interaction"]}
    assert forms == {"read", "search-type"}
    for resource_type in REFERENCED_TYPES:
        assert [i["code"] for i in resources[resource_type]["interaction"]] == ["read"]
        assert not resources[resource_type].get("searchParam")
        probe = await gateway.client.get(f"/fhir/{resource_type}/region-nord.x")
        assert probe.status_code == 401
    assert [o["name"] for o in resources["Patient"]["operation"]] == [
        "download",
        "emergency-access",
        "everything",
        "export",
        "notification-settings",
        "summary",
    ]
    assert {i["code"] for i in resources["Group"]["interaction"]} == {"read"}
    assert [o["name"] for o in resources["Group"]["operation"]] == ["export"]
    assert {i["code"] for i in resources["Consent"]["interaction"]} == {
        "create",
        "read",
        "search-type",
        "update",
    }
    for resource_type in SERVED_TYPES:
        names = {p["name"] for p in resources[resource_type]["searchParam"]}
        assert {"patient", "_id", "_lastUpdated"} <= names
    # Every advertised type search really answers (with 401: it exists and is guarded).
    for resource_type in SERVED_TYPES:
        probe = await gateway.client.get(f"/fhir/{resource_type}?patient=x")
        assert probe.status_code == 401
    unadvertised = await gateway.client.get("/fhir/Practitioner?name=x")
    assert unadvertised.status_code in (404, 405)


async def test_reads_carry_an_etag_and_honour_if_none_match(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    first = await gateway.client.get(f"/fhir/Patient/{patient_id}", headers=gateway.citizen())
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    headers = gateway.citizen() | {"If-None-Match": etag}
    again = await gateway.client.get(f"/fhir/Patient/{patient_id}", headers=headers)
    assert again.status_code == 304
    assert again.content == b""
    other = gateway.citizen() | {"If-None-Match": 'W/"something-else"'}
    changed = await gateway.client.get(f"/fhir/Patient/{patient_id}", headers=other)
    assert changed.status_code == 200
    assert changed.json() == first.json()


async def test_summary_is_an_ips_document_for_the_record_owner_only(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$summary", headers=gateway.citizen()
    )
    assert response.status_code == 200
    document = response.json()
    assert document["type"] == "document"
    composition = document["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["type"]["coding"][0]["code"] == "60591-5"
    sections = {s["code"]["coding"][0]["code"] for s in composition["section"]}
    assert {"10160-0", "48765-2", "11450-4", "30954-2"} <= sections
    refused = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$summary", headers=gateway.citizen("199001011239")
    )
    assert refused.status_code == 403


async def test_everything_narrowed_by_type_since_and_count(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    url = f"/fhir/Patient/{patient_id}/$everything"
    headers = gateway.citizen()
    whole = matches((await gateway.client.get(url, headers=headers)).json())

    conditions = await gateway.client.get(url, params={"_type": "Condition"}, headers=headers)
    kinds = {r["resourceType"] for r in matches(conditions.json())}
    assert kinds == {"Patient", "Condition"}
    assert len(matches(conditions.json())) == 1 + sum(
        r["resourceType"] == "Condition" for r in whole
    )

    future = await gateway.client.get(
        url, params={"_since": "2100-01-01T00:00:00Z"}, headers=headers
    )
    assert [r["resourceType"] for r in matches(future.json())] == ["Patient"]
    past = await gateway.client.get(url, params={"_since": "2000-01-01T00:00:00Z"}, headers=headers)
    assert len(matches(past.json())) == len(whole)
    date_only = await gateway.client.get(url, params={"_since": "2026-01-01"}, headers=headers)
    assert date_only.status_code == 400
    assert date_only.json()["resourceType"] == "OperationOutcome"

    first = (await gateway.client.get(url, params={"_count": "100"}, headers=headers)).json()
    assert len(matches(first)) == 100
    paged = await follow_pages(gateway, first, headers)
    assert sorted(r["id"] for r in paged) == sorted(r["id"] for r in whole)
