"""The regions as real HTTP servers on loopback: auth, dialects, search and paging."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simregions.data import SERVED_TYPES, build_region_data
from simregions.fhirhttp import FHIR_JSON
from simregions.people import TEST_PERSON_PNR, relations, representatives
from simregions.regions import DEFAULT_REGIONS
from simregions.store import region_store
from tests.simregions.conftest import Served

REGION_IDS = [region.id for region in DEFAULT_REGIONS]


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """One pooled client: a fresh one per request would spend most of the time on set-up."""
    with httpx.Client() as pooled:
        yield pooled


def get(client: httpx.Client, served: Served, path: str, **params: Any) -> httpx.Response:
    return client.get(f"{served.fhir}/{path}", params=params, headers=served.auth)


def next_url(bundle: dict[str, Any]) -> str | None:
    return next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def test_metadata_needs_no_token_and_lists_what_is_served(
    regions: dict[str, Served], client: httpx.Client
) -> None:
    response = client.get(f"{regions['nord'].fhir}/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"] == FHIR_JSON
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    served = {r["type"]: r for r in statement["rest"][0]["resource"]}
    # The record's types, and the schedules and requests it takes writes for.
    assert set(served) == set(SERVED_TYPES) | {"Schedule", "Slot", "Task", "Communication"}
    names = {p["name"] for p in served["Observation"]["searchParam"]}
    assert {"patient", "subject", "_lastUpdated", "code"} <= names


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer sim-vast-token"}],
)
@pytest.mark.parametrize("path", ["/fhir/Patient", "/fhir/Observation/1", "/_sim/behaviour"])
def test_everything_else_needs_the_region_token(
    regions: dict[str, Served], client: httpx.Client, headers: dict[str, str], path: str
) -> None:
    response = client.get(regions["nord"].server.url + path, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == FHIR_JSON
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("region_id", "system", "value", "found"),
    [
        ("nord", "http://electronichealth.se/identifier/personnummer", TEST_PERSON_PNR, True),
        ("nord", "http://electronichealth.se/identifier/personnummer", "19121212-1212", False),
        ("nord", "http://regionvast.example.se/identifier/personnummer", TEST_PERSON_PNR, False),
        ("vast", "http://regionvast.example.se/identifier/personnummer", "121212+1212", True),
        ("vast", "http://regionvast.example.se/identifier/personnummer", "121212-1212", False),
        ("vast", "http://electronichealth.se/identifier/personnummer", TEST_PERSON_PNR, False),
        ("syd", "http://electronichealth.se/identifier/personnummer", TEST_PERSON_PNR, True),
    ],
)
def test_patient_search_speaks_only_the_region_dialect(
    regions: dict[str, Served],
    client: httpx.Client,
    region_id: str,
    system: str,
    value: str,
    found: bool,
) -> None:
    served = regions[region_id]
    bundle = get(client, served, "Patient", identifier=f"{system}|{value}").json()
    assert bundle["type"] == "searchset"
    assert bundle["total"] == (1 if found else 0)
    if found:
        (entry,) = matches(bundle)
        assert entry["resource"]["id"] == served.test_patient_id
        assert entry["fullUrl"] == f"{served.fhir}/Patient/{served.test_patient_id}"


def test_patient_search_by_form_post(regions: dict[str, Served], client: httpx.Client) -> None:
    served = regions["vast"]
    response = client.post(
        f"{served.fhir}/Patient/_search",
        data={"identifier": "http://regionvast.example.se/identifier/personnummer|121212+1212"},
        headers=served.auth,
    )
    assert response.status_code == 200
    assert [e["resource"]["id"] for e in matches(response.json())] == [served.test_patient_id]


def test_read_and_not_found(regions: dict[str, Served], client: httpx.Client) -> None:
    served = regions["syd"]
    patient = get(client, served, f"Patient/{served.test_patient_id}").json()
    assert patient["name"][0]["family"] == "Tolvansson"
    missing = get(client, served, "Observation/does-not-exist")
    assert missing.status_code == 404
    assert missing.json()["issue"][0]["code"] == "not-found"
    unknown_type = get(client, served, "Banana", patient=served.test_patient_id)
    assert unknown_type.status_code == 400
    assert unknown_type.json()["resourceType"] == "OperationOutcome"
    assert get(client, served, "Banana/1").status_code == 400


@pytest.mark.parametrize("region_id", REGION_IDS)
def test_following_next_links_yields_every_resource_exactly_once(
    regions: dict[str, Served], client: httpx.Client, region_id: str
) -> None:
    served = regions[region_id]
    patient_id = served.test_patient_id
    expected = {r.id for r in region_store(served.spec).candidates("Observation", patient_id)}
    seen: list[str] = []
    sizes: list[int] = []
    url: str | None = f"{served.fhir}/Observation?patient={patient_id}"
    while url:
        bundle = client.get(url, headers=served.auth).json()
        assert bundle["total"] == len(expected)
        page = matches(bundle)
        sizes.append(len(page))
        seen.extend(entry["resource"]["id"] for entry in page)
        url = next_url(bundle)
        assert url is None or url.startswith(served.fhir)
    assert len(seen) == len(set(seen)) == len(expected)
    assert set(seen) == expected
    assert all(size == served.spec.page_size for size in sizes[:-1])
    assert 0 < sizes[-1] <= served.spec.page_size


def test_nord_pages_hold_ten_and_count_is_capped(
    regions: dict[str, Served], client: httpx.Client
) -> None:
    served = regions["nord"]
    patient_id = served.test_patient_id
    assert len(matches(get(client, served, "Observation", patient=patient_id).json())) == 10
    assert (
        len(matches(get(client, served, "Observation", patient=patient_id, _count=3).json())) == 3
    )
    assert (
        len(matches(get(client, served, "Observation", patient=patient_id, _count=500).json()))
        == 10
    )
    counted = get(client, served, "Observation", patient=patient_id, _count=0).json()
    assert counted["total"] > 100
    assert "entry" not in counted


@pytest.mark.parametrize(
    "param",
    [("patient", "{id}"), ("patient", "Patient/{id}"), ("subject", "Patient/{id}")],
)
def test_patient_reference_forms_are_equivalent(
    regions: dict[str, Served], client: httpx.Client, param: tuple[str, str]
) -> None:
    served = regions["vast"]
    name, template = param
    bundle = get(
        client, served, "Condition", **{name: template.format(id=served.test_patient_id)}
    ).json()
    assert bundle["total"] > 0
    assert bundle["total"] == len(
        region_store(served.spec).candidates("Condition", served.test_patient_id)
    )


def test_unknown_parameters_are_ignored_and_reported(
    regions: dict[str, Served], client: httpx.Client
) -> None:
    served = regions["nord"]
    bundle = get(client, served, "Encounter", patient=served.test_patient_id, _sort="-date").json()
    outcomes = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1
    assert outcomes[0]["resource"]["resourceType"] == "OperationOutcome"
    assert "_sort" in outcomes[0]["resource"]["issue"][0]["diagnostics"]
    assert len(matches(bundle)) == 10
    assert "_sort" in (next_url(bundle) or "")


def test_token_and_last_updated_filters(regions: dict[str, Served], client: httpx.Client) -> None:
    served = regions["syd"]
    patient_id = served.test_patient_id
    everything = get(client, served, "Observation", patient=patient_id).json()["total"]
    recent = get(
        client, served, "Observation", patient=patient_id, _lastUpdated="gt2026-01-01"
    ).json()
    assert 0 < recent["total"] < everything
    for entry in matches(recent):
        assert entry["resource"]["meta"]["lastUpdated"] >= "2026-01-02"
    by_code = get(
        client, served, "Observation", patient=patient_id, code="urn:oid:1.2.208.176.2.1|NPU28309"
    ).json()
    assert by_code["total"] > 0
    assert all(e["resource"]["code"]["coding"][0]["code"] == "NPU28309" for e in matches(by_code))
    booked = get(client, served, "Appointment", patient=patient_id, status="booked").json()
    assert all(e["resource"]["status"] == "booked" for e in matches(booked))


@pytest.mark.parametrize(
    "params",
    [{"_count": "many"}, {"_lastUpdated": "gtyesterday"}, {"_cursor": "not-a-cursor!"}],
)
def test_bad_search_input_is_a_400_outcome(
    regions: dict[str, Served], client: httpx.Client, params: dict[str, str]
) -> None:
    response = get(client, regions["nord"], "Observation", **params)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_relations_list_the_children_of_the_region(
    regions: dict[str, Served], client: httpx.Client
) -> None:
    served = regions["nord"]
    response = client.get(f"{served.server.url}/_sim/relations", headers=served.auth)
    assert response.status_code == 200
    every = response.json()["relations"]
    listed = [r for r in every if r["relationship"] == "guardian"]
    patient_ids = build_region_data(served.spec).patient_ids
    expected = [(g, c) for g, c in relations() if c in patient_ids]
    assert [(r["guardian"]["personnummer"], r["child"]["personnummer"]) for r in listed] == (
        expected
    )
    # Legal representatives of the region's adults too (god man, förvaltare).
    represented = [
        (r["representative"]["personnummer"], r["represented"]["personnummer"])
        for r in every
        if r["relationship"] == "legal-representative"
    ]
    assert represented == [(a, p) for a, p in representatives() if p in patient_ids]
    assert represented
    for relation in listed:
        assert (
            relation["child"]["patient"]
            == f"Patient/{patient_ids[relation['child']['personnummer']]}"
        )


def test_behaviour_can_be_read_and_changed_over_http(faulty: Served) -> None:
    url = f"{faulty.server.url}/_sim/behaviour"
    with httpx.Client(headers=faulty.auth) as control:
        assert control.get(url).json()["fault"] == "none"
        changed = control.put(url, json={"fault": "error-500", "latency_ms": 5})
        assert changed.status_code == 200
        assert changed.json()["fault"] == "error-500"
        assert faulty.behaviour.fault == "error-500"
        refused = control.put(url, json={"fault": "meltdown"})
        assert refused.status_code == 400
        assert "unavailable-503" in refused.json()["error"]
        assert control.put(url, content=b"[1]").status_code == 400
    assert faulty.behaviour.fault == "error-500"
