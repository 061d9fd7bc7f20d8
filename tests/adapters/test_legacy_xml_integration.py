"""LegacyXmlAdapter against the real Region Öst server on loopback, compared with Region Nord."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from adapters.base import SourceAdapter
from adapters.config import SourceConfig
from adapters.errors import (
    SourceAuthError,
    SourceError,
    SourceProtocolError,
    SourceTimeout,
    SourceUnavailable,
)
from adapters.fhir_r4 import FhirR4Adapter
from adapters.legacy_xml import SUPPORTED_TYPES, LegacyXmlAdapter
from fhir_profiles.identifiers import HSA_ID_SYSTEM, PersonIdentifier
from simregions.app import create_app
from simregions.behaviour import Behaviour
from simregions.data import build_region_data
from simregions.legacy.app import create_legacy_app
from simregions.legacy.records import build_legacy_data, people_in_legacy_region
from simregions.legacy.spec import OST
from simregions.people import TEST_PERSON_PNR, all_people
from simregions.regions import get_region
from simregions.server import RunningServer, serve_in_thread

pytestmark = pytest.mark.anyio

TOLVAN = PersonIdentifier(TEST_PERSON_PNR)
MAPPED = ("Observation", "MedicationRequest", "Encounter", "DocumentReference")


@pytest.fixture(scope="module")
def ost_server() -> Iterator[RunningServer]:
    build_legacy_data(OST)
    with serve_in_thread(create_legacy_app(OST)) as server:
        yield server


@pytest.fixture(scope="module")
def nord_server() -> Iterator[RunningServer]:
    spec = get_region("nord")
    with serve_in_thread(create_app(spec)) as server:
        yield server


def legacy_config(url: str, timeout: float = 5.0) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "id": "region-ost",
            "kind": "legacy-xml",
            "base_url": f"{url}/rivta",
            "timeout": timeout,
            "dialect": {"logical_address": OST.care_provider_hsa_id},
        }
    )


@pytest.fixture
async def ost(ost_server: RunningServer) -> AsyncIterator[LegacyXmlAdapter]:
    headers = {"Authorization": f"Bearer {OST.token}"}
    async with httpx.AsyncClient(headers=headers) as client:
        source = LegacyXmlAdapter(legacy_config(ost_server.url), client)
        yield source
        await source.aclose()


@pytest.fixture
async def nord(nord_server: RunningServer) -> AsyncIterator[FhirR4Adapter]:
    spec = get_region("nord")
    config = SourceConfig.model_validate(
        {"id": "region-nord", "kind": "fhir-r4", "base_url": f"{nord_server.url}/fhir"}
    )
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {spec.token}"}) as client:
        yield FhirR4Adapter(config, client)


async def test_it_is_a_source_adapter(ost: LegacyXmlAdapter) -> None:
    assert isinstance(ost, SourceAdapter)


async def test_the_test_person_is_found_with_an_opaque_id(ost: LegacyXmlAdapter) -> None:
    patient = await ost.find_patient(TOLVAN)
    assert patient is not None
    assert patient["name"][0]["text"] == "Tolvan Tolvansson"
    assert patient["identifier"][0]["value"] == TEST_PERSON_PNR
    assert TEST_PERSON_PNR[2:8] not in patient["id"]


async def test_someone_without_a_record_in_ost_is_none(ost: LegacyXmlAdapter) -> None:
    inside = {person.pnr for person in people_in_legacy_region(OST)}
    outsider = next(person for person in all_people() if person.pnr not in inside)
    assert await ost.find_patient(PersonIdentifier(outsider.pnr)) is None


async def test_everyone_in_ost_is_found_and_has_records(ost: LegacyXmlAdapter) -> None:
    people = people_in_legacy_region(OST)
    assert len(people) == OST.people_count + 1
    for person in people[:5]:
        patient = await ost.find_patient(PersonIdentifier(person.pnr))
        assert patient is not None
        assert await ost.search("Observation", patient["id"])


def shape(resource: dict[str, Any]) -> dict[str, Any]:
    """The parts of a resource the gateway relies on, independent of the source."""
    found: dict[str, Any] = {"resourceType": resource["resourceType"]}
    subject = resource.get("subject", {}).get("reference", "")
    found["subject"] = subject.split("/")[0]
    kind = resource["resourceType"]
    if kind == "Observation":
        found["category"] = resource["category"][0]["coding"][0]["code"]
        found["value keys"] = set(resource["valueQuantity"]) >= {"value", "unit", "system", "code"}
        found["ucum"] = resource["valueQuantity"]["system"]
        found["effective"] = "T" in resource["effectiveDateTime"]
        found["performer"] = resource["performer"][0]["identifier"]["system"]
        found["range"] = set(resource["referenceRange"][0]) - {"low", "high"}
    elif kind == "MedicationRequest":
        found["atc"] = resource["medicationCodeableConcept"]["coding"][0]["system"]
        found["text"] = bool(resource["medicationCodeableConcept"]["text"])
        found["dosage"] = bool(resource["dosageInstruction"][0]["text"])
        found["authored"] = "T" in resource["authoredOn"]
        found["intent"] = resource["intent"]
    elif kind == "Encounter":
        found["class"] = isinstance(resource["class"], dict) and set(resource["class"]) >= {
            "system",
            "code",
        }
        found["class system"] = resource["class"]["system"]
        found["period"] = set(resource["period"])
        found["provider"] = resource["serviceProvider"]["identifier"]["system"]
    elif kind == "DocumentReference":
        attachment = resource["content"][0]["attachment"]
        found["content type"] = attachment["contentType"]
        found["data"] = bool(attachment["data"])
        found["custodian"] = resource["custodian"]["identifier"]["system"]
        found["date"] = "T" in resource["date"]
        found["type system"] = resource["type"]["coding"][0]["system"]
    return found


@pytest.mark.parametrize("resource_type", MAPPED)
async def test_each_type_is_shaped_like_region_nords(
    ost: LegacyXmlAdapter, nord: FhirR4Adapter, resource_type: str
) -> None:
    ost_patient = await ost.find_patient(TOLVAN)
    nord_patient = await nord.find_patient(TOLVAN)
    assert ost_patient is not None
    assert nord_patient is not None
    from_ost = await ost.search(resource_type, ost_patient["id"])
    from_nord = await nord.search(resource_type, nord_patient["id"])
    if resource_type == "Observation":  # Nord's are laboratory results: compare with Öst's
        from_ost = [o for o in from_ost if o["category"][0]["coding"][0]["code"] == "laboratory"]
    assert from_ost
    assert from_nord
    expected = shape(from_nord[0])
    for resource in from_ost:
        assert resource["subject"] == {"reference": f"Patient/{ost_patient['id']}"}
        assert shape(resource) == expected
    assert len({resource["id"] for resource in from_ost}) == len(from_ost)


async def test_appointments_are_not_offered(ost: LegacyXmlAdapter) -> None:
    patient = await ost.find_patient(TOLVAN)
    assert patient is not None
    assert await ost.search("Appointment", patient["id"]) == []


async def test_notes_link_to_their_care_contact(ost: LegacyXmlAdapter) -> None:
    patient = await ost.find_patient(TOLVAN)
    assert patient is not None
    encounters = {e["id"] for e in await ost.search("Encounter", patient["id"])}
    for document in await ost.search("DocumentReference", patient["id"]):
        [link] = document["context"]["encounter"]
        assert link["reference"].removeprefix("Encounter/") in encounters


def key_fields(observation: dict[str, Any]) -> tuple[Any, ...]:
    quantity = observation["valueQuantity"]
    return (
        observation["code"]["coding"][0]["system"],
        observation["code"]["coding"][0]["code"],
        observation["effectiveDateTime"],
        quantity["value"],
        quantity["code"],
        observation["performer"][0]["identifier"]["value"],
        observation["referenceRange"][0]["text"],
    )


async def test_the_planted_hb_duplicates_region_syds_result(ost: LegacyXmlAdapter) -> None:
    patient = await ost.find_patient(TOLVAN)
    assert patient is not None
    syd = build_region_data(get_region("syd"))
    marked = syd.marked["hb-duplicate"]
    [syd_hb] = [r for r in syd.resources if r["id"] == marked]
    copies = [
        o
        for o in await ost.search("Observation", patient["id"])
        if o["effectiveDateTime"] == syd_hb["effectiveDateTime"]
    ]
    assert [key_fields(o) for o in copies] == [key_fields(syd_hb)]
    assert copies[0]["performer"][0]["identifier"]["system"] == HSA_ID_SYSTEM


async def test_the_planted_crp_matches_region_nords_after_code_mapping(
    ost: LegacyXmlAdapter, nord: FhirR4Adapter
) -> None:
    ost_patient = await ost.find_patient(TOLVAN)
    nord_patient = await nord.find_patient(TOLVAN)
    assert ost_patient is not None
    assert nord_patient is not None
    when = "2026-09-14T08:12:00+02:00"
    [from_ost] = [
        o
        for o in await ost.search("Observation", ost_patient["id"])
        if o["effectiveDateTime"] == when
    ]
    [from_nord] = [
        o
        for o in await nord.search("Observation", nord_patient["id"])
        if o["effectiveDateTime"] == when and o["code"]["text"] == "P-CRP"
    ]
    assert key_fields(from_ost)[2:] == key_fields(from_nord)[2:]
    assert from_ost["code"]["coding"][0]["code"] == "NPU19748"


# -- faults ----------------------------------------------------------------------------------


@pytest.fixture
def faulty() -> Iterator[tuple[RunningServer, Behaviour]]:
    behaviour = Behaviour()
    with serve_in_thread(create_legacy_app(OST, behaviour)) as server:
        yield server, behaviour


async def ask(server: RunningServer, deadline: float = 5.0, token: str = OST.token) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        source = LegacyXmlAdapter(legacy_config(server.url, deadline), client)
        await source.find_patient(TOLVAN)


@pytest.mark.parametrize(
    ("fault", "expected", "text"),
    [
        ("error-500", SourceUnavailable, r"SOAP Fault \(Server\)"),
        ("unavailable-503", SourceUnavailable, "HTTP 503"),
        ("rate-limit-429", SourceUnavailable, "HTTP 429"),
        ("malformed-json", SourceProtocolError, "not well-formed XML"),
        ("invalid-fhir", SourceProtocolError, "unexpected response element"),
        ("reset", SourceUnavailable, "broken HTTP response"),
        ("down", SourceUnavailable, "."),
        ("timeout", SourceTimeout, "timed out"),
    ],
)
async def test_fault_modes_become_source_errors(
    faulty: tuple[RunningServer, Behaviour], fault: str, expected: type[SourceError], text: str
) -> None:
    server, behaviour = faulty
    behaviour.fault = fault
    with pytest.raises(expected, match=text) as caught:
        await ask(server, deadline=0.5)
    assert TEST_PERSON_PNR not in str(caught.value)
    if fault == "rate-limit-429":
        assert caught.value.retry_after == 1.0


async def test_fault_paths_pick_one_contract(faulty: tuple[RunningServer, Behaviour]) -> None:
    server, behaviour = faulty
    behaviour.fault = "error-500"
    behaviour.fault_paths = "GetCareContacts"
    await ask(server)  # demographics are not affected


async def test_a_wrong_token_is_an_auth_error(faulty: tuple[RunningServer, Behaviour]) -> None:
    server, _ = faulty
    with pytest.raises(SourceAuthError, match="HTTP 401"):
        await ask(server, token="not-the-token")


async def test_a_wrong_logical_address_is_a_client_fault(
    faulty: tuple[RunningServer, Behaviour],
) -> None:
    server, _ = faulty
    config = SourceConfig.model_validate(
        {
            "id": "region-ost",
            "kind": "legacy-xml",
            "base_url": f"{server.url}/rivta",
            "dialect": {"logical_address": "SE0000000000-NONE"},
        }
    )
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {OST.token}"}) as client:
        with pytest.raises(SourceProtocolError, match=r"SOAP Fault \(Client\)"):
            await LegacyXmlAdapter(config, client).find_patient(TOLVAN)


async def test_returned_resources_share_no_nested_objects(ost: LegacyXmlAdapter) -> None:
    """Callers edit resources in place; a shared nested dict would leak edits across them."""
    patient = await ost.find_patient(TOLVAN)
    assert patient is not None
    seen: dict[int, str] = {}
    alive: list[object] = []  # keep every result alive so no id() is reused
    for resource_type in SUPPORTED_TYPES:
        results = await ost.search(resource_type, str(patient["id"]))
        alive.append(results)
        for resource in results:
            stack: list[object] = [resource]
            while stack:
                node = stack.pop()
                if isinstance(node, dict | list):
                    assert id(node) not in seen, (resource_type, seen.get(id(node)), node)
                    seen[id(node)] = resource_type
                    stack.extend(node.values() if isinstance(node, dict) else node)


async def test_every_type_has_the_same_ids_on_every_ask(ost_server: RunningServer) -> None:
    """Ids come from the source's id and the records' own ids: a new adapter (another
    process, a restart) gives every resource the id it had."""
    found: list[dict[str, list[str]]] = []
    for _ in range(2):
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {OST.token}"}) as client:
            source = LegacyXmlAdapter(legacy_config(ost_server.url), client)
            patient = await source.find_patient(TOLVAN)
            assert patient is not None
            found.append(
                {
                    kind: sorted(r["id"] for r in await source.search(kind, patient["id"]))
                    for kind in SUPPORTED_TYPES
                }
            )
    assert found[0] == found[1]
    assert all(found[0].values()), "Tolvan has records of every type"
