"""One clean record: codes, units, duplicates, provenance and profiles, end to end.

The overview of the test person from the three FHIR regions (and, in one test, the legacy
XML region too) must read as one record whose every resource validates; a source that codes
and reports like a US laboratory is served in the Swedish units, what cannot be converted
kept as it came and counted in the source's status.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import pytest

from fhir_profiles.validate import errors
from gateway.run.demo import legacy_source, region_source
from simregions.app import SimRegionApp
from simregions.behaviour import Behaviour
from simregions.data import build_region_data, deliberate_duplicates
from simregions.legacy.app import create_legacy_app
from simregions.legacy.spec import OST
from simregions.server import serve_in_thread
from simregions.store import RegionStore
from tests.conftest import IssuerKit
from tests.gateway.conftest import TEST_PERSON, Gateway, Region, running_gateway

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
    labs = [
        r
        for r in resources
        if r["resourceType"] == "Observation"
        and r["category"][0]["coding"][0]["code"] == "laboratory"
    ]
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
    converted: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for observation in glucose:
        quantity = observation["valueQuantity"]
        (original,) = [e for e in quantity["extension"] if e["url"].endswith("original-quantity")]
        kind = observation["category"][0]["coding"][0]["code"]
        converted[kind].add((original["valueQuantity"]["code"], quantity["code"]))
    assert {sent for sent, _ in converted["laboratory"]} == {"mg/dL", "g/dL"}
    assert not {shown for _, shown in converted["laboratory"]} & {"mg/dL", "g/dL"}
    # A vital sign gets the unit of the vital sign: Region Väst's heights in metres.
    assert converted["vital-signs"] == {("m", "cm")}


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
    labs = [r for r in legacy if r["resourceType"] == "Observation" and "laboratory" in str(r)]
    assert labs
    for lab in labs:
        assert loinc(lab), "NPU codes from the legacy region gain LOINC"
    for resource in legacy:
        assert errors(resource) == [], resource["id"]
    # Öst's Hb of 2026-05-20 equals Syd's and Nord's: merged, not repeated.
    merged = [p for p in includes if "region-ost" in str(p)]
    assert merged


UCUM = "http://unitsofmeasure.org"
#: A lipid panel and chemistry as a US laboratory codes and reports them (LOINC's mass
#: codes, mass units, HbA1c in NGSP %), and what each is served as.
US_RESULTS = [
    ("us-chol", "2093-3", 200, "mg/dL", "mmol/L", 5.17),
    ("us-hdl", "2085-9", 50, "mg/dL", "mmol/L", 1.3),
    ("us-ldl", "18262-6", 130, "mg/dL", "mmol/L", 3.36),
    ("us-ldl-calc", "13457-7", 128, "mg/dL", "mmol/L", 3.31),
    ("us-tg", "2571-8", 150, "mg/dL", "mmol/L", 1.69),
    ("us-bun", "3094-0", 14, "mg/dL", "mmol/L", 5.0),
    ("us-malb", "14957-5", 2.5, "mg/dL", "mg/L", 25),
    ("us-a1c", "4548-4", 6.5, "%", "mmol/mol", 48),
]


def _us_observation(local_id: str, loinc: str, value: float, unit: str, patient: str) -> Any:
    return {
        "resourceType": "Observation",
        "id": local_id,
        "meta": {"versionId": "1", "lastUpdated": "2026-03-02T09:00:00Z"},
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2026-03-02T08:15:00+01:00",
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


async def test_a_us_coded_source_is_served_in_swedish_units_and_the_rest_as_sent(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    spec = regions["nord"].spec
    store = RegionStore(build_region_data(spec))  # a store of its own: the test adds to it
    (person,) = [
        stored.id
        for stored in store.candidates("Patient", None)
        if TEST_PERSON.encode() in stored.body
    ]
    sent = [
        _us_observation(i, code, value, unit, person) for i, code, value, unit, *_ in US_RESULTS
    ]
    odd = [
        _us_observation("us-hdl-odd", "2085-9", 50, "mg/100mL", person),
        _us_observation("us-ldl-odd", "2089-1", 130, "mg/100mL", person),
    ]
    for resource in sent + odd:
        store.put(copy.deepcopy(resource))
    with serve_in_thread(SimRegionApp(spec, Behaviour(), store)) as server:
        source = region_source(spec, server.url + "/fhir") | {"id": "region-us", "name": "US"}
        async with running_gateway(database_url, issuer, {}, extra_sources=[source]) as gw:
            response = await gw.client.get(
                f"/fhir/Patient/{await gw.patient_id()}/$everything", headers=gw.citizen()
            )
    assert response.status_code == 200
    bundle = response.json()
    served = {
        e["resource"]["id"].removeprefix("region-us."): e["resource"]
        for e in bundle["entry"]
        if e["search"]["mode"] == "match"
    }
    for (local_id, *_, canonical, converted), original in zip(US_RESULTS, sent, strict=True):
        quantity = served[local_id]["valueQuantity"]
        assert (quantity["code"], quantity["value"]) == (canonical, converted), local_id
        (kept,) = [e for e in quantity["extension"] if e["url"].endswith("original-quantity")]
        assert kept["valueQuantity"] == original["valueQuantity"]
    for original in odd:  # kept exactly as they came, and counted in the source's status
        assert served[original["id"]]["valueQuantity"] == original["valueQuantity"]
    assert bundle_warning(bundle, "region-us") == (
        "Observation.valueQuantity: no known conversion to mmol/L, left as sent (2x)"
    )


def bundle_warning(bundle: dict[str, Any], source_id: str) -> str:
    """The one warning the source's status issue carries after its resource count."""
    (outcome,) = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    (issue,) = [i for i in outcome["issue"] if source_id in str(i.get("extension"))]
    _, warning = str(issue["diagnostics"]).split("; ", 1)
    return warning
