"""The suite every adapter must pass, whatever dialect it speaks.

Each adapter kind runs against its own simulated source as a real server on loopback
(Region Nord for ``fhir-r4``, Region Öst for ``legacy-xml``). The fault scenarios are data:
one file per scenario in ``scenarios/``, naming the fault the source injects and the error
the adapter must turn it into. A new adapter joins by adding one entry to ``KINDS``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters import errors
from adapters.base import SourceAdapter
from adapters.config import SourceConfig
from adapters.legacy_xml import SUPPORTED_TYPES
from adapters.registry import build_adapter
from fhir_profiles.identifiers import canonical_identifier, parse_person_identifier
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from gateway.run.demo import legacy_source, region_source
from simregions.app import create_app
from simregions.behaviour import Behaviour
from simregions.legacy.app import create_legacy_app
from simregions.legacy.spec import OST
from simregions.regions import get_region
from simregions.server import RunningServer, serve_in_thread

pytestmark = pytest.mark.anyio

TOLVAN = parse_person_identifier("191212121212")
NOBODY = parse_person_identifier("199001011239")
SCENARIOS = {
    path.stem: json.loads(path.read_text(encoding="utf-8"))
    for path in sorted((Path(__file__).parent / "scenarios").glob("*.json"))
}


@dataclass
class Kind:
    """How to run one adapter kind against its simulated source."""

    name: str
    token: str
    app: Callable[[Behaviour], Any]
    config: Callable[[str], dict[str, Any]]
    #: The types this source serves (others must come back empty).
    types: tuple[str, ...]


KINDS = [
    Kind(
        "fhir-r4",
        get_region("nord").token,
        lambda behaviour: create_app(get_region("nord"), behaviour),
        lambda url: region_source(get_region("nord"), f"{url}/fhir"),
        PATIENT_COMPARTMENT_TYPES,
    ),
    Kind(
        "legacy-xml",
        OST.token,
        lambda behaviour: create_legacy_app(OST, behaviour),
        lambda url: legacy_source(OST, f"{url}/rivta"),
        SUPPORTED_TYPES,
    ),
]


@dataclass
class Running:
    kind: Kind
    server: RunningServer
    behaviour: Behaviour


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def source(request: pytest.FixtureRequest) -> Iterator[Running]:
    kind: Kind = request.param
    behaviour = Behaviour()
    with serve_in_thread(kind.app(behaviour)) as server:
        yield Running(kind, server, behaviour)


@pytest.fixture(autouse=True)
def _healthy(source: Running) -> Iterator[None]:
    yield
    source.behaviour.update({"fault": "none", "latency_ms": 0, "fault_rate": 1.0})


@pytest.fixture
async def adapter(source: Running) -> AsyncIterator[SourceAdapter]:
    async with client_for(source) as client:
        yield build_adapter(config_for(source), client)


def config_for(source: Running) -> SourceConfig:
    return SourceConfig.model_validate(source.kind.config(source.server.url))


def client_for(
    source: Running, token: str | None = None, timeout: float = 3.0
) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token or source.kind.token}"}
    return httpx.AsyncClient(headers=headers, timeout=timeout)


async def test_it_is_a_source_adapter(adapter: SourceAdapter) -> None:
    assert isinstance(adapter, SourceAdapter)


async def test_finds_the_person_by_identity_number(adapter: SourceAdapter) -> None:
    patient = await adapter.find_patient(TOLVAN)
    assert patient is not None
    assert patient["resourceType"] == "Patient"
    assert "191212" not in str(patient["id"]), "the Patient id is not the identity number"
    numbers = {
        found.value
        for identifier in patient["identifier"]
        if (found := canonical_identifier(identifier["system"], identifier["value"])) is not None
    }
    assert numbers == {TOLVAN.value}


async def test_someone_the_source_does_not_know_is_none(adapter: SourceAdapter) -> None:
    assert await adapter.find_patient(NOBODY) is None


async def test_every_type_comes_back_as_that_patients_fhir_resources(
    adapter: SourceAdapter, source: Running
) -> None:
    patient = await adapter.find_patient(TOLVAN)
    assert patient is not None
    own = f"Patient/{patient['id']}"
    asked = dict.fromkeys((*PATIENT_COMPARTMENT_TYPES, *source.kind.types))
    for resource_type in asked:
        found = await adapter.search(resource_type, str(patient["id"]))
        if resource_type not in source.kind.types:
            assert found == []
            continue
        assert found, resource_type
        ids = set()
        for resource in found:
            assert resource["resourceType"] == resource_type
            assert 0 < len(resource["id"]) <= 64
            ids.add(resource["id"])
            refs = json.dumps(
                resource.get("subject") or resource.get("patient") or resource.get("participant")
            )
            assert own in refs
        assert len(ids) == len(found), "no resource twice"


async def test_results_are_fresh_objects_the_caller_owns(adapter: SourceAdapter) -> None:
    patient = await adapter.find_patient(TOLVAN)
    assert patient is not None
    first = await adapter.search("Observation", str(patient["id"]))
    first[0]["subject"]["reference"] = "Patient/changed"
    second = await adapter.search("Observation", str(patient["id"]))
    assert all(r["subject"]["reference"] != "Patient/changed" for r in second)
    alive, seen = [first, second], set()
    for resource in first:
        stack: list[Any] = [resource]
        while stack:
            node = stack.pop()
            if isinstance(node, dict | list):
                assert id(node) not in seen, "a nested object is shared between resources"
                seen.add(id(node))
                stack.extend(node.values() if isinstance(node, dict) else node)
    del alive


@pytest.mark.parametrize("name", SCENARIOS)
async def test_scenario(source: Running, name: str) -> None:
    spec = SCENARIOS[name]
    async with client_for(source, spec.get("token"), spec.get("timeout", 3.0)) as client:
        adapter = build_adapter(config_for(source), client)
        patient = await adapter.find_patient(TOLVAN) if spec.get("token") is None else None
        source.behaviour.update({"fault": spec["fault"]})

        async def fetch() -> object:
            if patient is None:
                return await adapter.find_patient(TOLVAN)
            return await adapter.search("Observation", str(patient["id"]))

        expected = spec["expect"]
        if expected == "ok":
            assert await fetch()
            return
        if expected == "cancelled-by-deadline":
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(spec["deadline"]):
                    await fetch()
            assert time.monotonic() - started < spec["deadline"] + 1.0
            return
        error_type = getattr(errors, expected)
        with pytest.raises(error_type) as raised:
            async with asyncio.timeout(spec.get("deadline")):
                await fetch()
        if "retry_after" in spec:
            assert raised.value.retry_after == spec["retry_after"]
        assert TOLVAN.value not in str(raised.value)
        assert TOLVAN.value[2:8] not in str(raised.value)
