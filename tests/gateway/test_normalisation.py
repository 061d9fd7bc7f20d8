"""One clean record: codes, units, duplicates, provenance and profiles, end to end.

The overview of the test person from the three FHIR regions (and, in one test, the legacy
XML region too) must read as one record whose every resource validates.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from fhir_profiles.validate import errors
from gateway.run.demo import legacy_source
from simregions.data import deliberate_duplicates
from simregions.legacy.app import create_legacy_app
from simregions.legacy.spec import OST
from simregions.server import serve_in_thread
from tests.conftest import IssuerKit
from tests.gateway.conftest import Gateway, Region, running_gateway

pytestmark = pytest.mark.anyio

LOINC = "http://loinc.org"
NPU = "urn:oid:1.2.208.176.2.1"


async def overview(gateway: Gateway) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
    )
    assert response.status_code == 200
    entries = response.json()["entry"]
    matches = [e["resource"] for e in entries if e["search"]["mode"] == "match"]
    includes = [e["resource"] for e in entries if e["search"]["mode"] == "include"]
    return matches, includes


def loinc(observation: dict[str, Any]) -> str | None:
    for coding in observation["code"]["coding"]:
        if coding["system"] == LOINC:
            return str(coding["code"])
    return None


async def test_each_lab_result_once_in_one_unit_with_loinc_and_the_original_code(
    gateway: Gateway,
) -> None:
    resources, _ = await overview(gateway)
    labs = [r for r in resources if r["resourceType"] == "Observation"]
    assert labs
    units: dict[str, set[str]] = defaultdict(set)
    seen: dict[tuple[str, str, object], list[str]] = defaultdict(list)
    for lab in labs:
        code = loinc(lab)
        assert code, f"no LOINC coding on {lab['id']}"
        if "quantity" in str(lab.get("valueQuantity")) or "valueQuantity" in lab:
            units[code].add(lab["valueQuantity"]["code"])
        source = lab["meta"]["source"].split("#")[0]
        seen[(code, lab["effectiveDateTime"], lab.get("valueQuantity", {}).get("value"))].append(
            source
        )
        if source.endswith("region-syd"):
            # Syd codes NPU (or a local system): the original coding stays beside LOINC.
            assert any(c["system"] != LOINC for c in lab["code"]["coding"]), "original kept"
    for code, codes in units.items():
        assert len(codes) == 1, f"{code} served in several units: {codes}"
    duplicates = {key: sources for key, sources in seen.items() if len(set(sources)) > 1}
    assert duplicates == {}, "the same result from two sources must appear once"


async def test_planted_duplicates_appear_once_and_stay_recoverable(gateway: Gateway) -> None:
    resources, includes = await overview(gateway)
    by_source = {r["meta"]["source"].split(":")[-1]: r for r in resources}
    for planted in deliberate_duplicates():
        (first_region, first_id), *others = planted.ids
        keys = [f"region-{region}#{planted.resource_type}/{rid}" for region, rid in planted.ids]
        shown = [k for k in keys if k in by_source]
        assert shown == [keys[0]], planted.description
        primary = by_source[keys[0]]
        also = {
            e["valueUri"] for e in primary.get("extension", []) if "also-reported-by" in e["url"]
        }
        assert also == {f"urn:samlad:source:{k}" for k in keys[1:]}
        provenance = [
            p
            for p in includes
            if p["target"][0]["reference"] == f"{planted.resource_type}/{primary['id']}"
        ]
        assert len(provenance) == 1
        assert {e["what"]["identifier"]["value"] for e in provenance[0]["entity"]} == {
            f"urn:samlad:source:{k}" for k in keys
        }
        del first_region, first_id, others


async def test_units_are_converted_and_the_original_is_kept(gateway: Gateway) -> None:
    resources, _ = await overview(gateway)
    glucose = [
        r
        for r in resources
        if r["resourceType"] == "Observation"
        and r["meta"]["source"].startswith("urn:samlad:source:region-vast")
        and any(
            e["url"].endswith("original-quantity")
            for e in r.get("valueQuantity", {}).get("extension", [])
        )
    ]
    assert glucose, "Region Väst's mg/dL and g/dL values are converted"
    for lab in glucose:
        quantity = lab["valueQuantity"]
        (original,) = [e for e in quantity["extension"] if e["url"].endswith("original-quantity")]
        assert original["valueQuantity"]["code"] in {"mg/dL", "g/dL"}
        assert quantity["code"] not in {"mg/dL", "g/dL"}


async def test_every_resource_has_provenance_and_validates(gateway: Gateway) -> None:
    resources, includes = await overview(gateway)
    for resource in resources[1:]:
        meta = resource["meta"]
        assert meta["source"].startswith("urn:samlad:source:region-")
        tags = {t["system"].rsplit("/", 1)[-1]: t["code"] for t in meta.get("tag", [])}
        assert tags["care-provider"].startswith("SE")
        assert meta["extension"][0]["url"].endswith("fetched-at")
    for resource in [*resources, *includes]:
        problems = errors(resource)
        assert problems == [], (resource["resourceType"], resource["id"], problems[:3])


async def test_dates_carry_a_time_zone(gateway: Gateway) -> None:
    resources, _ = await overview(gateway)
    for lab in (r for r in resources if r["resourceType"] == "Observation"):
        value = lab["effectiveDateTime"]
        assert len(value) == 10 or value.endswith("Z") or value[-6] in "+-", value


async def test_ids_are_stable_and_never_collide(gateway: Gateway) -> None:
    first, _ = await overview(gateway)
    second, _ = await overview(gateway)
    assert [r["id"] for r in first] == [r["id"] for r in second]
    keys = [(r["resourceType"], r["id"]) for r in first]
    assert len(keys) == len(set(keys))


async def test_legacy_region_reads_like_the_fhir_regions(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    with serve_in_thread(create_legacy_app(OST)) as ost:
        source = legacy_source(OST, ost.url + "/rivta")
        async with running_gateway(database_url, issuer, regions, extra_sources=[source]) as gw:
            resources, includes = await overview(gw)
    legacy = [r for r in resources if "source:region-ost#" in r["meta"]["source"]]
    assert legacy, "Region Öst answered and was merged"
    fhir = [r for r in resources if "source:region-nord#" in r["meta"]["source"]]
    assert {r["resourceType"] for r in legacy} >= {"Observation", "MedicationRequest", "Encounter"}
    for kind in ("Observation", "MedicationRequest", "Encounter", "DocumentReference"):
        ours = next(r for r in legacy if r["resourceType"] == kind)
        theirs = next(r for r in fhir if r["resourceType"] == kind)
        assert ours["subject"] == theirs["subject"]
        required = {"resourceType", "id", "meta", "subject", "status"}
        assert required <= ours.keys()
    for lab in (r for r in legacy if r["resourceType"] == "Observation"):
        assert loinc(lab), "NPU codes from the legacy region gain LOINC"
    for resource in legacy:
        assert errors(resource) == [], resource["id"]
    # Öst's Hb of 2026-05-20 equals Syd's and Nord's: merged, not repeated.
    merged = [p for p in includes if "region-ost" in str(p)]
    assert merged
