"""``GET /fhir/{type}/{id}``: every ``fullUrl`` an answer gives resolves, under the same
access rules as the search that gave it (against the real regions, both databases)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text

from fhir_profiles.extensions import ALSO_REPORTED_BY_URL
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from fhir_profiles.validate import errors
from tests.gateway.conftest import (
    FHIR_BASE,
    GUARDIAN,
    NORD_PROVIDER,
    TEST_PERSON,
    Gateway,
    every_entry,
)
from tests.gateway.consent_helpers import block, grant

pytestmark = pytest.mark.anyio

Resource = dict[str, Any]
SYD_PROVIDER = "SE2321009003-SYD0"


@pytest.fixture
def gateway(unlimited_gateway: Gateway) -> Gateway:
    """A test here reads each of ~200 resources: no rate limits."""
    return unlimited_gateway


async def everything(gateway: Gateway, patient_id: str, headers: dict[str, str]) -> list[Any]:
    """Every entry of the patient's ``$everything`` but the Patient, page by page."""
    entries = await every_entry(gateway, f"/fhir/Patient/{patient_id}/$everything", headers)
    return [e for e in entries if e["resource"]["resourceType"] != "Patient"]


def path_of(full_url: str) -> str:
    assert full_url.startswith(f"{FHIR_BASE}/")
    return full_url.removeprefix(FHIR_BASE.removesuffix("/fhir"))


async def read(gateway: Gateway, path: str, headers: dict[str, str]) -> Any:
    return await gateway.client.get(path, headers=headers)


async def test_every_full_url_in_everything_reads_back_the_same_resource(
    gateway: Gateway,
) -> None:
    patient_id = await gateway.patient_id()
    headers = gateway.citizen()
    entries = [
        e
        for e in await everything(gateway, patient_id, headers)
        if e["resource"]["resourceType"] in PATIENT_COMPARTMENT_TYPES
    ]
    assert {e["resource"]["resourceType"] for e in entries} == set(PATIENT_COMPARTMENT_TYPES)
    for entry in entries:
        response = await read(gateway, path_of(entry["fullUrl"]), headers)
        assert response.status_code == 200, (entry["fullUrl"], response.text)
        assert response.json() == entry["resource"]
        assert errors(response.json()) == [], entry["fullUrl"]
        assert response.headers["content-type"].startswith("application/fhir+json")
        etag = response.headers["etag"]
        again = await gateway.client.get(
            path_of(entry["fullUrl"]), headers={**headers, "If-None-Match": etag}
        )
        assert again.status_code == 304


async def test_a_merged_duplicates_own_id_reads_the_merged_resource(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    headers = gateway.citizen()
    merged = [
        e["resource"]
        for e in await everything(gateway, patient_id, headers)
        if any(x.get("url") == ALSO_REPORTED_BY_URL for x in e["resource"].get("extension", []))
    ]
    assert merged, "the test person's record has duplicates across regions"
    resource = merged[0]
    uri = next(x["valueUri"] for x in resource["extension"] if x["url"] == ALSO_REPORTED_BY_URL)
    source, _, original = uri.rpartition(":")[2].partition("#")
    kind, _, local = original.partition("/")
    response = await read(gateway, f"/fhir/{kind}/{source}.{local}", headers)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == resource["id"]


async def test_reads_are_logged_as_reads_of_one_resource(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    headers = gateway.citizen()
    entry = next(
        e
        for e in await everything(gateway, patient_id, headers)
        if e["resource"]["resourceType"] == "Condition"
    )
    assert (await read(gateway, path_of(entry["fullUrl"]), headers)).status_code == 200
    log = await gateway.client.get(f"/fhir/AuditEvent?patient={patient_id}", headers=headers)
    assert log.status_code == 200
    events = [e["resource"] for e in log.json()["entry"]]
    reads = [e for e in events if e.get("subtype", [{}])[0].get("code") == "read"]
    assert reads, "the read is in the access log"
    assert TEST_PERSON not in log.text


async def test_another_citizen_is_refused_and_the_refusal_logged(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    entry = next(
        e
        for e in await everything(gateway, patient_id, gateway.citizen())
        if e["resource"]["resourceType"] == "Observation"
    )
    stranger = gateway.citizen(GUARDIAN)
    response = await read(gateway, path_of(entry["fullUrl"]), stranger)
    assert response.status_code == 403
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert TEST_PERSON not in response.text
    log = await gateway.client.get(
        f"/fhir/AuditEvent?patient={patient_id}", headers=gateway.citizen()
    )
    assert "denied" in log.text or '"outcome": "4"' in log.text or '"outcome":"4"' in log.text


async def test_a_clinician_reads_by_id_only_with_consent_and_never_what_is_blocked(
    gateway: Gateway,
) -> None:
    patient_id = await gateway.patient_id()
    entries = await everything(gateway, patient_id, gateway.citizen())
    tags = {
        e["fullUrl"]: {t.get("code") for t in e["resource"].get("meta", {}).get("tag", [])}
        for e in entries
    }
    syd = next(url for url, codes in tags.items() if SYD_PROVIDER in codes)
    other = next(url for url, codes in tags.items() if SYD_PROVIDER not in codes)
    clinician = gateway.clinician()
    assert (await read(gateway, path_of(other), clinician)).status_code == 403
    await grant(gateway, patient_id, NORD_PROVIDER)
    assert (await read(gateway, path_of(other), clinician)).status_code == 200
    assert (await read(gateway, path_of(syd), clinician)).status_code == 200
    await block(gateway, patient_id, SYD_PROVIDER)
    hidden = await read(gateway, path_of(syd), clinician)
    assert hidden.status_code == 404
    assert SYD_PROVIDER not in hidden.text
    assert (await read(gateway, path_of(other), clinician)).status_code == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/fhir/Observation/no-such-id", 404),
        ("/fhir/Condition/region-nord.nothing", 404),
        ("/fhir/Observation/bad%20id", 400),
        (f"/fhir/Observation/{'x' * 65}", 400),
    ],
)
async def test_unknown_and_malformed_ids_get_an_operation_outcome(
    gateway: Gateway, path: str, status: int
) -> None:
    response = await read(gateway, path, gateway.citizen())
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_the_owner_index_holds_no_id_in_the_clear(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    entries = await everything(gateway, patient_id, gateway.citizen())
    url = make_url(gateway.settings.database_url)
    if url.drivername.startswith("postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT patient_id, ref FROM record_owner")).all()
    engine.dispose()
    assert len(rows) >= len(entries)
    stored = " ".join(ref for _, ref in rows)
    for entry in entries:
        assert entry["resource"]["id"] not in stored
    assert {owner for owner, _ in rows} == {patient_id}
