"""What answers refer to beyond the record: every reference to a Practitioner,
PractitionerRole, Organization or Location in an answer reads through the gateway, from
the region that holds it (real regions on loopback, both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fhir_profiles.identifiers import SOURCE_URI
from fhir_profiles.resource_types import REFERENCED_TYPES
from fhir_profiles.validate import errors
from tests.gateway.conftest import (
    NORD_PROVIDER,
    Gateway,
    Region,
    every_entry,
)
from tests.gateway.consent_helpers import grant

pytestmark = pytest.mark.anyio


@pytest.fixture
def gateway(unlimited_gateway: Gateway) -> Gateway:
    """A test here reads every referenced resource: no rate limits."""
    return unlimited_gateway


def references(node: Any) -> Iterator[str]:
    """Every literal reference in ``node``, at any depth."""
    if isinstance(node, dict):
        value = node.get("reference")
        if isinstance(value, str):
            yield value
        for child in node.values():
            yield from references(child)
    elif isinstance(node, list):
        for child in node:
            yield from references(child)


async def everything(
    gateway: Gateway, patient_id: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    path = f"/fhir/Patient/{patient_id}/$everything"
    entries = await every_entry(gateway, path, headers or gateway.citizen())
    return [e["resource"] for e in entries]


async def test_every_reference_in_everything_reads_through_the_gateway(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    record = await everything(gateway, patient_id)
    referenced = {
        ref
        for resource in record
        for ref in references(resource)
        if ref.split("/")[0] in REFERENCED_TYPES
    }
    kinds = {ref.split("/")[0] for ref in referenced}
    assert {"Practitioner", "Organization", "Location"} <= kinds
    seen: set[str] = set()
    pending = sorted(referenced)
    while pending:  # what a referenced resource refers to resolves too
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        response = await gateway.client.get(f"/fhir/{ref}", headers=gateway.citizen())
        assert response.status_code == 200, (ref, response.text)
        resource = response.json()
        assert f"{resource['resourceType']}/{resource['id']}" == ref
        assert resource["meta"]["source"].startswith(SOURCE_URI)
        assert response.headers["etag"]
        assert errors(resource) == [], ref
        pending += [r for r in references(resource) if r.split("/")[0] in REFERENCED_TYPES]


def unresolved_types(node: Any) -> Iterator[str]:
    """The types of every ``unresolved`` count in a source status, at any depth."""
    if isinstance(node, dict):
        if node.get("url") == "unresolved":
            yield from (e["valueCode"] for e in node.get("extension", []) if e.get("url") == "type")
        for child in node.values():
            yield from unresolved_types(child)
    elif isinstance(node, list):
        for child in node:
            yield from unresolved_types(child)


async def test_references_to_what_the_sources_can_read_are_not_counted_unresolved(
    gateway: Gateway,
) -> None:
    patient_id = await gateway.patient_id()
    await grant(gateway, patient_id, NORD_PROVIDER)
    headers = gateway.clinician()  # nothing hidden from them: the counts are shown
    response = await gateway.client.get(
        f"/fhir/Observation?patient={patient_id}&_count=1", headers=headers
    )
    assert response.status_code == 200, response.text
    statuses = [e["resource"] for e in response.json()["entry"] if e["search"]["mode"] == "outcome"]
    assert statuses
    assert not set(unresolved_types(statuses)) & set(REFERENCED_TYPES)


async def test_scopes_that_do_not_cover_the_type_are_refused(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    record = await everything(gateway, patient_id)
    ref = next(r for res in record for r in references(res) if r.startswith("Practitioner/"))
    narrow = gateway.citizen(scope="patient/Observation.rs")
    refused = await gateway.client.get(f"/fhir/{ref}", headers=narrow)
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"
    clinician = await gateway.client.get(f"/fhir/{ref}", headers=gateway.clinician())
    assert clinician.status_code == 200, "no consent is needed: it is nobody's record"
    wrong_context = gateway.integrator(scope="user/*.rs")
    assert (await gateway.client.get(f"/fhir/{ref}", headers=wrong_context)).status_code == 403


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/fhir/Practitioner/no-such-source.1", 404),
        ("/fhir/Practitioner/region-nord.no-such-practitioner", 404),
        ("/fhir/Organization/region-nord.", 404),
        ("/fhir/Location/bad%20id", 400),
    ],
)
async def test_what_no_source_holds_is_not_found(gateway: Gateway, path: str, status: int) -> None:
    response = await gateway.client.get(path, headers=gateway.citizen())
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_a_source_that_cannot_be_asked_gives_503_not_a_guess(
    gateway: Gateway, regions: dict[str, Region]
) -> None:
    patient_id = await gateway.patient_id()
    record = await everything(gateway, patient_id)
    region = regions["nord"]
    prefix = f"Practitioner/{region.source_id}."
    ref = next(r for res in record for r in references(res) if r.startswith(prefix))
    region.behaviour.fault = "error-500"
    response = await gateway.client.get(f"/fhir/{ref}", headers=gateway.citizen())
    assert response.status_code == 503, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "http" not in response.json()["issue"][0].get("diagnostics", "").lower()
