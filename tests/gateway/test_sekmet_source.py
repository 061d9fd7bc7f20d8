"""An independent FHIR R4 server (sekmet-fhir) as the gateway's only source, as it is:
people filed under every identifier form, references to its practitioners and places,
and every resource given a new id mid-test (both databases).

The gateway is configured for sekmet with one documented source entry; nothing in the
gateway knows it is sekmet.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_profiles.demographics import DEMOGRAPHIC_CONFLICT_URL
from fhir_profiles.extensions import SOURCE_STATUS_URL
from fhir_profiles.identifiers import PERSONNUMMER_OID, SAMORDNINGSNUMMER_SYSTEM
from fhir_profiles.resource_types import REFERENCED_TYPES
from gateway.collect.collector import SINCE_OVERLAP
from tests.adapters.adapter_fakes import make_person
from tests.conftest import IssuerKit
from tests.gateway.conftest import (
    FHIR_BASE,
    TEST_PERSON,
    Gateway,
    every_entry,
    running_gateway,
)
from tests.sekmet import MRN_SYSTEM, SekmetFolder, free_port, sekmet_command

pytestmark = pytest.mark.anyio

FHIR_JSON = "application/fhir+json"
SOURCE = "sekmet"
#: The day the 10-digit forms are written for (any year from 2020 on writes them alike).
WRITTEN = date(2026, 12, 6)
_OID = make_person("19610510", "301")
_CENTENARIAN = make_person("19200511", "302")
_SAMORDNING = make_person("19740572", "303")
#: People filed as real sources file them, beside the test person's canonical form:
#: (identity number, system, value as filed).
FILED: list[tuple[str, str, str]] = [
    (_OID.value, PERSONNUMMER_OID, _OID.value),
    (_CENTENARIAN.value, PERSONNUMMER_OID, _CENTENARIAN.format("yymmdd-nnnn", today=WRITTEN)),
    (_SAMORDNING.value, SAMORDNINGSNUMMER_SYSTEM, _SAMORDNING.format("yymmdd-nnnn", today=WRITTEN)),
]


@pytest.fixture
def sekmet() -> Iterator[SekmetFolder]:
    """A sekmet-fhir server on loopback with the test person (vitals, a condition, an
    admission) and its facility's practitioners, places and organisations."""
    command = sekmet_command()
    if command is None:
        pytest.skip("the sekmet command (sekmet-fhir) is not installed")
    with tempfile.TemporaryDirectory(prefix="sekmet-") as folder:
        server = SekmetFolder(command, Path(folder), free_port(), "sekmet-gateway-token")
        server.write_settings()
        server.run("seed", "--count", "2", "--config", "settings.yaml")
        server.admit_test_person(TEST_PERSON)
        with server.serving():
            yield server


def sekmet_client(server: SekmetFolder) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.token}", "Accept": FHIR_JSON},
    )


async def file_people(server: SekmetFolder) -> None:
    """Each of :data:`FILED` as a Patient with one observation by a facility doctor."""
    async with sekmet_client(server) as client:
        doctor = (await client.get("/Practitioner", params={"_count": "1"})).json()
        doctor_ref = f"Practitioner/{doctor['entry'][0]['resource']['id']}"
        for number, system, value in FILED:
            body = {"resourceType": "Patient", "identifier": [{"system": system, "value": value}]}
            created = await client.post("/Patient", json=body)
            assert created.status_code == 201, created.text
            observation = {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "subject": {"reference": f"Patient/{created.json()['id']}"},
                "performer": [{"reference": doctor_ref}],
                "effectiveDateTime": f"2026-05-0{int(number[-1]) + 1}T10:00:00Z",
                "valueQuantity": {"value": int(number[-3:]) / 10, "unit": "kg",
                                  "system": "http://unitsofmeasure.org", "code": "kg"},
            }  # fmt: skip
            assert (await client.post("/Observation", json=observation)).status_code == 201


async def give_new_ids(server: SekmetFolder, resource_type: str, patient: str) -> set[str]:
    """What re-seeding does: each of the patient's resources of the type copied under a
    new id and the original deleted. Returns the old ids."""
    async with sekmet_client(server) as client:
        found = (await client.get(f"/{resource_type}", params={"patient": patient})).json()
        old = set()
        for entry in found.get("entry", []):
            resource = entry["resource"]
            old.add(resource["id"])
            copy = {k: v for k, v in resource.items() if k not in ("id", "meta")}
            assert (await client.post(f"/{resource_type}", json=copy)).status_code == 201
            deleted = await client.delete(f"/{resource_type}/{resource['id']}")
            assert deleted.status_code in (200, 204), deleted.text
    return old


async def everything(gateway: Gateway, patient_id: str, person: str) -> list[dict[str, Any]]:
    path = f"/fhir/Patient/{patient_id}/$everything"
    return await every_entry(gateway, path, gateway.citizen(person))


async def clock_skew(server: SekmetFolder) -> timedelta:
    """How far the source's clock (its answer's ``meta.lastUpdated``) is from ours."""
    async with sekmet_client(server) as client:
        answer = (await client.get("/Patient", params={"_count": "1"})).json()
    theirs = datetime.fromisoformat(answer["meta"]["lastUpdated"].replace("Z", "+00:00"))
    return abs(datetime.now(UTC) - theirs)


def status_of(entries: list[dict[str, Any]]) -> str:
    """The source's status in the answer (its last page's outcome)."""
    outcome = next(e["resource"] for e in entries if e["search"]["mode"] == "outcome")
    for issue in outcome["issue"]:
        for extension in issue.get("extension", []):
            if extension["url"] != SOURCE_STATUS_URL:
                continue
            parts = {p["url"]: p for p in extension["extension"]}
            if parts["source"]["valueString"] == SOURCE:
                return str(parts["status"]["valueCode"])
    raise AssertionError("no status of the source")


def conflicts_of(entries: list[dict[str, Any]]) -> set[str]:
    """The demographic fields the answer says the source contradicts."""
    outcome = next(e["resource"] for e in entries if e["search"]["mode"] == "outcome")
    return {
        part["valueCode"]
        for issue in outcome["issue"]
        for extension in issue.get("extension", [])
        if extension["url"] == DEMOGRAPHIC_CONFLICT_URL
        for part in extension["extension"]
        if part["url"] == "field"
    }


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node["reference"]
        for child in node.values():
            yield from references(child)
    elif isinstance(node, list):
        for child in node:
            yield from references(child)


def facts(entries: list[dict[str, Any]], resource_type: str) -> Counter[str]:
    """What each resource of the type says, without its ids and fetch times."""
    return Counter(
        str(
            (
                e["resource"].get("code"),
                e["resource"].get("effectiveDateTime") or e["resource"].get("recordedDate"),
                e["resource"].get("valueQuantity") or e["resource"].get("component"),
            )
        )
        for e in entries
        if e["search"]["mode"] == "match" and e["resource"]["resourceType"] == resource_type
    )


async def test_an_independent_server_as_it_is(
    database_url: str, issuer: IssuerKit, sekmet: SekmetFolder
) -> None:
    await file_people(sekmet)
    source = {
        "id": SOURCE,
        "name": "Sekmet (independent FHIR R4 server)",
        "kind": "fhir-r4",
        "base_url": sekmet.base_url,
        "auth": {"type": "bearer", "token": sekmet.token},
        "timeout": 5.0,
    }
    async with running_gateway(
        database_url,
        issuer,
        {},
        extra_sources=[source],
        cache_fresh_seconds=0,
        rate_limit_enabled=False,
    ) as gateway:
        # Everyone is found with the one source entry, however they are filed.
        for number, _, _ in FILED:
            patient_id = await gateway.patient_id(number)
            entries = await everything(gateway, patient_id, number)
            assert status_of(entries) == "ok"
            assert sum(facts(entries, "Observation").values()) == 1, number

        patient_id = await gateway.patient_id()
        before = await everything(gateway, patient_id, TEST_PERSON)
        assert status_of(before) == "ok"
        # sekmet gives the person a birth date of its own: shown, not merged silently.
        assert "birthDate" in conflicts_of(before)
        observations = facts(before, "Observation")
        assert sum(observations.values()) >= 3
        assert sum(facts(before, "Condition").values()) == 1

        # Every fullUrl and every reference answers through the gateway.
        headers = gateway.citizen()
        local = FHIR_BASE.removesuffix("/fhir")
        for entry in before:
            if entry["search"]["mode"] != "match":
                continue
            read = await gateway.client.get(entry["fullUrl"].removeprefix(local), headers=headers)
            assert read.status_code == 200, (entry["fullUrl"], read.text)
        referenced = {
            ref
            for entry in before
            for ref in references(entry["resource"])
            if ref.split("/")[0] in REFERENCED_TYPES
        }
        assert {ref.split("/")[0] for ref in referenced} >= {"Practitioner", "Location"}
        for ref in sorted(referenced):
            read = await gateway.client.get(f"/fhir/{ref}", headers=headers)
            assert read.status_code == 200, (ref, read.text)
            assert read.json()["meta"]["source"].startswith("urn:samlad:source:sekmet#")

        # The source gives the test person's data new ids: each fact is still served once.
        async with sekmet_client(sekmet) as client:
            found = await client.get(
                "/Patient", params={"identifier": f"{MRN_SYSTEM}|{TEST_PERSON}"}
            )
            local_patient = found.json()["entry"][0]["resource"]["id"]
        old = await give_new_ids(sekmet, "Observation", local_patient)
        old |= await give_new_ids(sekmet, "Condition", local_patient)
        skew = await clock_skew(sekmet)
        after = await everything(gateway, patient_id, TEST_PERSON)
        assert status_of(after) == "ok"
        assert facts(after, "Observation") == observations, "each fact once"
        assert sum(facts(after, "Condition").values()) == 1
        served = {e["resource"]["id"] for e in after if e["search"]["mode"] == "match"}
        if skew < SINCE_OVERLAP:
            # The refresh by last update saw the copies: they replace the old ids.
            assert not {f"{SOURCE}.{i}" for i in old} & served, "no copy under an old id"
        else:
            # Its clock is off by more than the overlap (sekmet stamps with the real
            # clock when the suite runs a year ahead): the copies are seen at the next full
            # refresh; until then the old ones, never both.
            assert {f"{SOURCE}.{i}" for i in old} <= served
