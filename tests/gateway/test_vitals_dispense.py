"""Vital signs (and assessments) and MedicationDispense through the merge and the search:
their duplicate rules, their parameters, and ``MedicationDispense:prescription``."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from adapters.base import FhirResource
from gateway.answer.search import (
    apply,
    includes_for,
    parse_search,
    revincludes_for,
    search_params_for,
)
from gateway.merge.record import unify
from tests.gateway.test_merge_rules import PERSON, gathered, patient, source

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
HSA = "urn:oid:1.2.752.129.2.1.4.1"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ATC = "http://www.whocc.no/atc"
PATIENT = "Patient/p-opaque-1"


def coded(code: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code}]}


def blood_pressure(local_id: str = "bp1", systolic: int = 142, **extra: Any) -> FhirResource:
    resource: FhirResource = {
        "resourceType": "Observation",
        "id": local_id,
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
        "code": coded("85354-9"),
        "subject": {"reference": "Patient/local-p"},
        "effectiveDateTime": "2023-04-12T09:30:00+02:00",
        "performer": [
            {
                "reference": "Organization/vc",
                "identifier": {"system": HSA, "value": "SE2321009001-VCN1"},
                "display": "Vårdcentralen Norrhamn",
            }
        ],
        "component": [
            {"code": coded("8480-6"), "valueQuantity": {"value": systolic, "system": UCUM,
                                                        "code": "mm[Hg]"}},
            {"code": coded("8462-4"), "valueQuantity": {"value": 88, "system": UCUM,
                                                        "code": "mm[Hg]"}},
        ],
        **extra,
    }  # fmt: skip
    return {key: value for key, value in resource.items() if value is not None}


def merged(a: list[FhirResource], b: list[FhirResource], types: set[str]) -> list[str]:
    result = unify(
        gathered((source("region-a"), patient(), a), (source("region-b"), patient(), b)),
        PERSON,
        "unified-id",
        frozenset(types),
    )
    return [r["id"] for r in result.resources]


def test_a_vital_sign_is_the_same_fact_by_code_time_values_and_issuer() -> None:
    vitals = {"Observation"}
    # The other region's copy, in another offset and with the components the other way round.
    copied = blood_pressure(effectiveDateTime="2023-04-12T07:30:00Z")
    copied["component"].reverse()
    assert merged([blood_pressure()], [copied], vitals) == ["region-a.bp1"]
    elsewhere = blood_pressure(
        performer=[{"identifier": {"system": HSA, "value": "SE2321009002-VCV1"}}]
    )
    for different in (blood_pressure(systolic=141), elsewhere):
        assert merged([blood_pressure()], [different], vitals) == ["region-a.bp1", "region-b.bp1"]
    # No issuer on either: the same reading.
    bare = blood_pressure(performer=None)
    assert merged([bare], [copy.deepcopy(bare)], vitals) == ["region-a.bp1"]
    # Without any value or component, never merged.
    empty = blood_pressure(component=None)
    assert merged([empty], [copy.deepcopy(empty)], vitals) == ["region-a.bp1", "region-b.bp1"]


def test_a_lab_result_keeps_its_rule_whoever_performed_it() -> None:
    lab = blood_pressure(
        category=[{"coding": [{"system": CATEGORY, "code": "laboratory"}]}],
        code=coded("718-7"),
        component=None,
        valueQuantity={"value": 140, "system": UCUM, "code": "g/L"},
    )
    other_lab = copy.deepcopy(lab)
    other_lab["performer"] = [{"display": "Klinisk kemi"}]
    assert merged([lab], [other_lab], {"Observation"}) == ["region-a.bp1"]


def dispense(local_id: str = "d1", **extra: Any) -> FhirResource:
    resource: FhirResource = {
        "resourceType": "MedicationDispense",
        "id": local_id,
        "status": "completed",
        "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "C09AA02"}]},
        "subject": {"reference": "Patient/local-p"},
        "authorizingPrescription": [{"reference": "MedicationRequest/rx1"}],
        "quantity": {"value": 98, "unit": "tablett", "system": UCUM, "code": "{tablet}"},
        "whenHandedOver": "2025-02-03T14:12:00+01:00",
        **extra,
    }
    return {key: value for key, value in resource.items() if value is not None}


def test_a_dispense_is_the_same_fact_by_medicine_time_and_quantity() -> None:
    kinds = {"MedicationDispense", "MedicationRequest"}
    assert merged([dispense()], [dispense()], kinds) == ["region-a.d1"]
    other = (
        dispense(quantity={"value": 28, "system": UCUM, "code": "{tablet}"}),
        dispense(whenHandedOver="2025-02-04T14:12:00+01:00"),
        dispense(medicationCodeableConcept={"coding": [{"system": ATC, "code": "C07AB02"}]}),
    )
    for different in other:
        assert merged([dispense()], [different], kinds) == ["region-a.d1", "region-b.d1"]
    # Not yet handed over: the time prepared decides; neither: never merged.
    prepared = dispense(whenHandedOver=None, whenPrepared="2025-02-03T09:00:00+01:00")
    assert merged([prepared], [copy.deepcopy(prepared)], kinds) == ["region-a.d1"]
    undated = dispense(whenHandedOver=None)
    assert merged([undated], [copy.deepcopy(undated)], kinds) == ["region-a.d1", "region-b.d1"]


def test_a_dispense_names_its_prescription_in_the_same_source() -> None:
    result = unify(
        gathered((source("region-a"), patient(), [dispense()])),
        PERSON,
        "unified-id",
        frozenset({"MedicationDispense"}),
    )
    (emitted,) = result.resources
    assert emitted["authorizingPrescription"] == [{"reference": "MedicationRequest/region-a.rx1"}]
    assert emitted["subject"] == {"reference": "Patient/unified-id"}
    assert result.reports[0].unresolved == {}


def _vital(rid: str, code: str, category: str = "vital-signs", **extra: Any) -> FhirResource:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": coded(code),
        "subject": {"reference": PATIENT},
        **extra,
    }


VITALS = [
    _vital("bp", "85354-9", component=[{"code": coded("8480-6")}, {"code": coded("8462-4")}],
           effectiveDateTime="2023-04-12T09:30:00+02:00"),
    _vital("weight", "29463-7", effectiveDateTime="2024-05-02T10:00:00+02:00"),
    _vital("adl", "96761-2", "survey", component=[{"code": coded("83186-7")}],
           effectiveDateTime="2025-09-15T13:00:00+02:00"),
    _vital("hb", "718-7", "laboratory", effectiveDateTime="2025-01-01T08:00:00+01:00"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("category", "vital-signs")], ["bp", "weight"]),
        ([("category", f"{CATEGORY}|survey")], ["adl"]),
        ([("category:not", "laboratory")], ["adl", "bp", "weight"]),
        ([("code", f"{LOINC}|29463-7")], ["weight"]),
        ([("component-code", "8480-6")], ["bp"]),
        ([("combo-code", "8480-6,29463-7")], ["bp", "weight"]),
        ([("combo-code", "83186-7")], ["adl"]),
        ([("category", "vital-signs"), ("date", "ge2024")], ["weight"]),
    ],
)
def test_observation_category_code_and_component_parameters(
    params: list[tuple[str, str]], expected: list[str]
) -> None:
    spec = parse_search("Observation", params, strict=True)
    assert [r["id"] for r in apply(spec, VITALS)] == expected


def _handed(rid: str, atc: str, when: str, status: str, rx: str, **extra: Any) -> FhirResource:
    return {
        "resourceType": "MedicationDispense",
        "id": rid,
        "status": status,
        "medicationCodeableConcept": {"coding": [{"system": ATC, "code": atc}]},
        "subject": {"reference": PATIENT},
        "authorizingPrescription": [{"reference": f"MedicationRequest/{rx}"}],
        "performer": [{"actor": {"reference": "Organization/nord.apotek-1"}}],
        "whenHandedOver": when,
        **extra,
    }


DISPENSES = [
    _handed("d1", "C09AA02", "2024-02-03T14:12:00+01:00", "completed", "nord.rx1"),
    _handed("d2", "C09AA02", "2025-02-03T14:12:00+01:00", "completed", "nord.rx1"),
    _handed("d3", "N02BE01", "2025-06-10T11:00:00+02:00", "cancelled", "nord.rx2",
            performer=[{"actor": {"reference": "Organization/nord.apotek-2"}}]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("status", "completed")], ["d1", "d2"]),
        ([("code", f"{ATC}|N02BE01")], ["d3"]),
        ([("whenhandedover", "ge2025")], ["d2", "d3"]),
        ([("prescription", "MedicationRequest/nord.rx1")], ["d1", "d2"]),
        ([("prescription", "nord.rx2")], ["d3"]),
        ([("prescription", "https://samlad.example/fhir/MedicationRequest/nord.rx2")], ["d3"]),
        ([("performer", "Organization/nord.apotek-2")], ["d3"]),
        ([("prescription", "MedicationRequest/nord.rx1,nord.rx2"), ("status:not", "completed")],
         ["d3"]),
        ([("patient", PATIENT), ("_sort", "-whenhandedover")], ["d3", "d2", "d1"]),
    ],
)  # fmt: skip
def test_dispense_parameters(params: list[tuple[str, str]], expected: list[str]) -> None:
    spec = parse_search("MedicationDispense", params, strict=True)
    assert [r["id"] for r in apply(spec, DISPENSES)] == expected


def test_dispense_links_and_capability() -> None:
    assert search_params_for("MedicationDispense") == {
        "patient": "reference",
        "subject": "reference",
        "status": "token",
        "code": "token",
        "whenhandedover": "date",
        "whenprepared": "date",
        "prescription": "reference",
        "performer": "reference",
        "_id": "token",
        "_lastUpdated": "date",
    }
    assert includes_for("MedicationDispense") == (
        "*",
        "MedicationDispense:patient",
        "MedicationDispense:subject",
        "MedicationDispense:prescription",
    )
    assert "MedicationDispense:prescription" in revincludes_for("MedicationRequest")
    assert search_params_for("Observation")["combo-code"] == "token"


def test_a_vital_sign_is_its_units_and_a_dispense_its_providers() -> None:
    """What a block hides: a reading by its performing unit; a dispensation, whose pharmacy
    has no HSA-id, by the source's care provider (and, failing closed, by any of its units)."""
    pharmacy = dispense(performer=[{"actor": {"display": "Apoteket Norrhamn"}}])
    result = unify(
        gathered((source("region-a"), patient(), [blood_pressure(), pharmacy])),
        PERSON,
        "unified-id",
        frozenset({"Observation", "MedicationDispense"}),
    )
    tags = {
        r["resourceType"]: {t["system"].rsplit("/", 1)[-1]: t["code"] for t in r["meta"]["tag"]}
        for r in result.resources
    }
    assert tags["Observation"] == {
        "care-provider": "SE2321000016-PROV",
        "care-unit": "SE2321009001-VCN1",
    }
    assert tags["MedicationDispense"] == {"care-provider": "SE2321000016-PROV"}
