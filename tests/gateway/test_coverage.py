"""Knowing what is missing: each source's status says what it shares and since when
(from its configuration, and learned once from its CapabilityStatement or the contracts
a legacy source answers); an empty search names the sources asked and those that do not
share what was searched; a clinician is always told that information may be blocked,
the same whether anything is blocked or not. Against the simulated regions on loopback,
Region Syd sharing no lab results, nothing before 2001 and notes only from 2005 (as in
the demo)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.config import SourceConfig
from adapters.coverage import capability_types, offered_types
from adapters.errors import SourceProtocolError
from fhir_profiles.coverage import EMPTY_CATEGORY_URL, SOURCE_COVERAGE_URL, coverage
from gateway.run.app import create_app
from gateway.run.demo import demo_regions
from simregions.app import create_app as create_region_app
from simregions.behaviour import Behaviour
from simregions.server import start_in_thread
from tests.conftest import IssuerKit
from tests.gateway.conftest import FHIR_BASE, Gateway, Region, gateway_settings
from tests.gateway.consent_helpers import block, grant

pytestmark = pytest.mark.anyio

NORD = "SE2321009001-NORD"


@pytest.fixture(scope="module")
def demo_like() -> Iterator[dict[str, Region]]:
    """The demo's regions (Region Syd sharing less), each on its own loopback port."""
    started: dict[str, Region] = {}
    try:
        for spec in demo_regions():
            behaviour = Behaviour()
            started[spec.id] = Region(
                spec, behaviour, start_in_thread(create_region_app(spec, behaviour))
            )
        yield started
    finally:
        for region in started.values():
            region.server.stop()


@pytest.fixture
async def gateway(
    database_url: str, issuer: IssuerKit, demo_like: dict[str, Region]
) -> AsyncIterator[Gateway]:
    """The gateway over the demo's regions, once it has learned what each offers."""
    settings = gateway_settings(database_url, issuer, demo_like)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        for _ in range(200):
            if app.state.services.coverage.learned:
                break
            await asyncio.sleep(0.05)
        assert app.state.services.coverage.learned
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield Gateway(client, issuer, demo_like, settings)


def _outcome(bundle: dict[str, Any]) -> dict[str, Any]:
    (outcome,) = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    return outcome


def _coverages(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each source's coverage, read from its issue: shares (category: since), withholds,
    learnedFrom."""
    found: dict[str, dict[str, Any]] = {}
    for issue in _outcome(bundle)["issue"]:
        parts = {e["url"]: e for e in issue.get("extension", [])}
        if SOURCE_COVERAGE_URL not in parts:
            continue
        source = parts["https://samlad.se/fhir/StructureDefinition/source-status"]["extension"][0]
        fields = parts[SOURCE_COVERAGE_URL]["extension"]
        shares = {}
        for share in (f["extension"] for f in fields if f["url"] == "shares"):
            values = {p["url"]: next(v for k, v in p.items() if k != "url") for p in share}
            shares[values["category"]] = values.get("since")
        found[source["valueString"]] = {
            "shares": shares,
            "withholds": [f["valueCode"] for f in fields if f["url"] == "withholds"],
            "learnedFrom": [f["valueCode"] for f in fields if f["url"] == "learnedFrom"],
            "since": next((f["valueDate"] for f in fields if f["url"] == "since"), None),
            "diagnostics": issue["diagnostics"],
        }
    return found


async def test_every_source_status_says_what_it_shares_and_since_when(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
    )
    assert response.status_code == 200, response.text
    covered = _coverages(response.json())
    assert set(covered) == {"region-nord", "region-vast", "region-syd"}
    syd = covered["region-syd"]
    assert syd["withholds"] == ["lab-results"]
    assert syd["since"] == "2001-01-01"
    assert syd["shares"]["notes"] == "2005-01-01"
    assert syd["shares"]["diagnoses"] == "2001-01-01"
    assert "lab-results" not in syd["shares"]
    assert syd["learnedFrom"] == ["configuration", "capability-statement"]
    assert "does not share lab-results" in syd["diagnostics"]
    nord = covered["region-nord"]
    assert nord["withholds"] == []
    assert nord["since"] is None
    assert nord["learnedFrom"] == ["capability-statement"]
    assert "lab-results" in nord["shares"]
    assert nord["shares"]["notes"] is None
    # What Region Syd withholds is not in the record.
    resources = [e["resource"] for e in response.json()["entry"] if e["search"]["mode"] == "match"]
    from_syd = [r for r in resources if "region-syd#" in r.get("meta", {}).get("source", "")]
    assert from_syd
    assert not any(
        r["resourceType"] == "Observation" and "laboratory" in str(r.get("category"))
        for r in from_syd
    )


async def test_a_search_shows_the_coverage_too(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        f"/fhir/Condition?patient={patient_id}", headers=gateway.citizen()
    )
    assert response.status_code == 200
    assert _coverages(response.json())["region-syd"]["withholds"] == ["lab-results"]


def _empty(bundle: dict[str, Any]) -> dict[str, list[str]] | None:
    for issue in _outcome(bundle)["issue"]:
        for extension in issue.get("extension", []):
            if extension["url"] == EMPTY_CATEGORY_URL:
                found: dict[str, list[str]] = {}
                for part in extension["extension"]:
                    value = part.get("valueString", part.get("valueCode"))
                    found.setdefault(part["url"], []).append(value)
                assert issue["code"] == "not-found"
                return found
    return None


async def test_an_empty_category_names_the_sources_asked_and_those_not_sharing_it(
    gateway: Gateway,
) -> None:
    patient_id = await gateway.patient_id()
    nothing = await gateway.client.get(
        f"/fhir/Observation?patient={patient_id}&category=laboratory&code=no-such-analysis",
        headers=gateway.citizen(),
    )
    assert nothing.status_code == 200
    bundle = nothing.json()
    assert bundle["total"] == 0
    assert _empty(bundle) == {
        "type": ["Observation"],
        "category": ["lab-results"],
        "asked": ["region-nord", "region-vast"],
        "notShared": ["region-syd"],
    }
    # A search that finds something has no such issue.
    found = await gateway.client.get(
        f"/fhir/Observation?patient={patient_id}&category=laboratory", headers=gateway.citizen()
    )
    assert found.json()["total"] > 0
    assert _empty(found.json()) is None


def _notices(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        issue
        for issue in _outcome(bundle)["issue"]
        if issue.get("details", {}).get("coding", [{}])[0].get("code") == "may-be-blocked"
    ]


async def _as_clinician(gateway: Gateway, patient_id: str) -> list[list[dict[str, Any]]]:
    headers = gateway.clinician()
    everything = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$everything", headers=headers
    )
    search = await gateway.client.get(f"/fhir/Condition?patient={patient_id}", headers=headers)
    empty = await gateway.client.get(
        f"/fhir/Condition?patient={patient_id}&code=no-such-code", headers=headers
    )
    assert {everything.status_code, search.status_code, empty.status_code} == {200}
    return [_notices(r.json()) for r in (everything, search, empty)]


async def test_the_clinician_notice_never_varies_with_what_is_blocked(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    own = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
    )
    assert _notices(own.json()) == []  # the person is not told of their own blocks
    await grant(gateway, patient_id, NORD)
    before = await _as_clinician(gateway, patient_id)
    assert all(len(notices) == 1 for notices in before)
    (notice,) = before[0]
    assert notice["severity"] == "information"
    assert "whether any is" in notice["diagnostics"]
    await block(gateway, patient_id, "SE2321009003-SYD0")
    await block(gateway, patient_id, "SE2321009002-VCAL", level="care-unit")
    after = await _as_clinician(gateway, patient_id)
    assert after == before
    integrator = await gateway.client.get(
        f"/fhir/Condition?patient={patient_id}", headers=gateway.integrator()
    )
    if integrator.status_code == 200:
        assert _notices(integrator.json()) == before[1]


def _source(kind: str, base_url: str, **extra: Any) -> SourceConfig:
    return SourceConfig(id="region-x", kind=kind, base_url=base_url, **extra)


async def test_the_types_offered_are_learned_from_the_capability_statement(
    demo_like: dict[str, Region],
) -> None:
    region = demo_like["nord"]
    async with httpx.AsyncClient() as client:
        learned = await offered_types(_source("fhir-r4", region.base_url), client)
        legacy = await offered_types(_source("legacy-xml", "http://127.0.0.1:9/x"), client)
    assert learned is not None
    assert learned[0] == "capability-statement"
    assert {"Observation", "DocumentReference", "Appointment"} <= learned[1]
    assert legacy is not None
    assert legacy[0] == "contracts"
    assert "Appointment" not in legacy[1]
    assert "Observation" in legacy[1]


def test_a_capability_statement_is_read_strictly() -> None:
    statement = b"""{"resourceType": "CapabilityStatement", "rest": [
        {"mode": "client", "resource": [{"type": "Appointment"}]},
        {"mode": "server", "resource": [{"type": "Condition"}, {"type": 3}, "x"]}]}"""
    assert capability_types(statement, "x") == frozenset({"Condition"})
    for wrong in (b"[]", b"not json", b'{"resourceType": "Patient"}'):
        with pytest.raises(SourceProtocolError):
            capability_types(wrong, "x")


def test_a_category_none_of_whose_types_is_offered_is_not_shared() -> None:
    covered = coverage(
        since=date(2001, 1, 1),
        since_by_category={"notes": date(2005, 1, 1)},
        withheld=["lab-results"],
        offered_types=frozenset({"Condition", "DocumentReference", "Observation", "CareTeam"}),
        learned_from="capability-statement",
    )
    shares = dict(covered.shares)
    assert shares["notes"] == date(2005, 1, 1)
    assert shares["diagnoses"] == date(2001, 1, 1)
    assert "care-plans" in shares
    assert "vital-signs" in shares
    assert {"lab-results", "appointments", "medications"} <= set(covered.withholds)
    assert covered.learned_from == ("configuration", "capability-statement")


def test_unknown_categories_are_refused_in_configuration(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown categories"):
        _source("fhir-r4", FHIR_BASE, coverage={"withholds": ["labs"]})
