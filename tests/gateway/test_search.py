"""FHIR search over hand-made unified resources: every parameter, prefix and result option.

Dates are chosen around Swedish time: a value without an offset is a Stockholm day or
month, so ``2026-04-30T23:30:00Z`` is already 1 May. Observations carry an NPU coding and
the LOINC coding normalisation adds, as the unified record does.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.base import FhirResource
from gateway.answer.search import (
    DEFAULT_COUNT,
    MAX_COUNT,
    SUBSETTED_TAG,
    apply,
    elements,
    includes_for,
    parse_search,
    revincludes_for,
    search_params_for,
    served_types,
    sortable_for,
)
from gateway.errors import BadRequest

NPU = "urn:oid:1.2.208.176.2.1"
LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PATIENT = "Patient/p-opaque-1"
PNR = "191212121212"

HB = [
    {"system": NPU, "code": "NPU28309", "display": "B—Haemoglobin; mass c."},
    {"system": LOINC, "code": "718-7", "userSelected": False},
]
GLUCOSE = [
    {"system": NPU, "code": "NPU22089"},
    {"system": LOINC, "code": "2345-7", "userSelected": False},
]
LOCAL = [{"code": "local-x"}, {"system": "urn:local", "code": "a,b"}]


def observation(
    resource_id: str,
    *,
    effective: dict[str, Any] | None = None,
    coding: list[dict[str, Any]] = HB,
    status: str = "final",
    category: str = "laboratory",
    updated: str | None = None,
) -> FhirResource:
    resource: FhirResource = {
        "resourceType": "Observation",
        "id": resource_id,
        "meta": {
            "tag": [{"system": "https://samlad.se/fhir/CodeSystem/care-provider", "code": "X"}]
        },
        "text": {"status": "generated", "div": "<div>...</div>"},
        "status": status,
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": coding},
        "subject": {"reference": PATIENT},
        "valueQuantity": {"value": 140, "unit": "g/L"},
    }
    if updated:
        resource["meta"]["lastUpdated"] = updated
    resource.update(effective or {})
    return resource


RECORD = [
    observation(
        "o1",
        effective={"effectiveDateTime": "2026-05-20T07:48:00+02:00"},
        updated="2026-05-21T10:00:00Z",
    ),
    observation(
        "o2",
        effective={"effectiveDateTime": "2026-05"},
        coding=GLUCOSE,
        status="preliminary",
        updated="2026-05-01T08:00:00+02:00",
    ),
    observation(
        "o3", effective={"effectiveDateTime": "2026-04-30T23:30:00Z"}, category="vital-signs"
    ),
    observation(
        "o4",
        effective={"effectivePeriod": {"start": "2026-05-10", "end": "2026-05-12"}},
        status="amended",
    ),
    observation("o5", coding=LOCAL),
    observation("o6", effective={"effectiveDateTime": "2026-06-01"}),
]


def ids(params: list[tuple[str, str]], resources: list[FhirResource] = RECORD) -> list[str]:
    spec = parse_search("Observation", params, strict=True)
    return [r["id"] for r in apply(spec, resources)]


def matched(params: list[tuple[str, str]], resources: list[FhirResource] = RECORD) -> set[str]:
    return set(ids(params, resources))


# -- date ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-05-20", {"o1"}),
        ("eq2026-05-20", {"o1"}),
        ("ne2026-05-20", {"o2", "o3", "o4", "o6"}),
        ("gt2026-05-20", {"o2", "o6"}),
        ("lt2026-05-20", {"o2", "o3", "o4"}),
        ("ge2026-05-20", {"o1", "o2", "o6"}),
        ("le2026-05-20", {"o1", "o2", "o3", "o4"}),
        ("sa2026-05-20", {"o6"}),
        ("eb2026-05-20", {"o3", "o4"}),
    ],
)
def test_date_prefixes_compare_ranges(value: str, expected: set[str]) -> None:
    # o2 is a whole month, o4 a period of days, o5 has no date and never matches.
    assert matched([("date", value)]) == expected


def test_month_precision_is_the_swedish_month() -> None:
    # o3 is 23:30 UTC on 30 April: 01:30 on 1 May in Stockholm.
    assert matched([("date", "2026-05")]) == {"o1", "o2", "o3", "o4"}
    assert matched([("date", "2026-04")]) == set()
    assert matched([("date", "2026")]) == {"o1", "o2", "o3", "o4", "o6"}


@pytest.mark.parametrize(
    "value",
    [
        "2026-05-20T07:48:00+02:00",
        "2026-05-20T05:48:00Z",
        "2026-05-20T07:48",  # minute precision, Stockholm time
        "2026-05-20T07:48:00 02:00",  # "+" decoded to a space by a form encoder
    ],
)
def test_instants_respect_offsets(value: str) -> None:
    assert matched([("date", value)]) == {"o1"}


def test_a_value_finer_than_the_target_does_not_contain_it() -> None:
    # o1 is known to the second; a millisecond is narrower than that second.
    assert matched([("date", "2026-05-20T07:48:00.000+02:00")]) == set()
    assert matched([("date", "2026-05-20T07:48:00+02:00")]) == {"o1"}


def test_date_parameters_are_anded_and_values_ored() -> None:
    assert matched([("date", "ge2026-05-01"), ("date", "lt2026-05-15")]) == {"o2", "o3", "o4"}
    assert matched([("date", "2026-05-20,2026-06-01")]) == {"o1", "o6"}


def test_ap_is_approximately_relative_to_now() -> None:
    # 42 days from "now" to the value: about 4 days either side count.
    spec = parse_search(
        "Observation",
        [("date", "ap2026-05-19")],
        strict=True,
        now=datetime(2026, 6, 30, tzinfo=UTC),
    )
    assert {r["id"] for r in apply(spec, RECORD)} == {"o1", "o2"}


def test_missing_modifier() -> None:
    assert matched([("date:missing", "true")]) == {"o5"}
    assert matched([("date:missing", "false")]) == {"o1", "o2", "o3", "o4", "o6"}


def test_last_updated() -> None:
    assert matched([("_lastUpdated", "gt2026-05-20")]) == {"o1"}
    assert matched([("_lastUpdated", "le2026-05-01")]) == {"o2"}
    assert matched([("_lastUpdated:missing", "true")]) == {"o3", "o4", "o5", "o6"}


day_offsets = st.integers(min_value=-400, max_value=400)


@given(
    targets=st.lists(day_offsets, min_size=1, max_size=20),
    probe=day_offsets,
    pair=st.sampled_from([("ge", "lt"), ("gt", "le"), ("eq", "ne")]),
)
def test_complementary_prefixes_partition_dated_resources(
    targets: list[int], probe: int, pair: tuple[str, str]
) -> None:
    # With day-precision values and a day-precision probe, each pair splits the record.
    start = date(2026, 1, 1)
    resources = [
        observation(f"r{i}", effective={"effectiveDateTime": str(start + timedelta(days=d))})
        for i, d in enumerate(targets)
    ]
    day = str(start + timedelta(days=probe))
    first = matched([("date", pair[0] + day)], resources)
    second = matched([("date", pair[1] + day)], resources)
    assert first.isdisjoint(second)
    assert first | second == {r["id"] for r in resources}


# -- tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("718-7", {"o1", "o3", "o4", "o6"}),  # the added LOINC coding
        ("NPU28309", {"o1", "o3", "o4", "o6"}),  # the original NPU coding
        (f"{LOINC}|718-7", {"o1", "o3", "o4", "o6"}),
        (f"{NPU}|NPU22089", {"o2"}),
        (f"{LOINC}|NPU28309", set()),  # right code, wrong system
        (f"{LOINC}|", {"o1", "o2", "o3", "o4", "o6"}),  # any LOINC code
        ("|local-x", {"o5"}),  # a coding without a system
        ("|718-7", set()),
        ("urn:local|a\\,b", {"o5"}),  # an escaped comma is part of the code
        ("2345-7,local-x", {"o2", "o5"}),
    ],
)
def test_code_matches_any_coding(value: str, expected: set[str]) -> None:
    assert matched([("code", value)]) == expected


def test_token_not_modifier() -> None:
    assert matched([("code:not", f"{LOINC}|718-7")]) == {"o2", "o5"}


def test_category_and_status() -> None:
    assert matched([("category", "vital-signs")]) == {"o3"}
    assert matched([("category", f"{CATEGORY}|laboratory"), ("status", "final")]) == {
        "o1",
        "o5",
        "o6",
    }
    assert matched([("status", "preliminary,amended")]) == {"o2", "o4"}


def test_id_list() -> None:
    assert matched([("_id", "o1,o3,nope")]) == {"o1", "o3"}
    assert matched([("_id", "o1,o3"), ("_id", "o3")]) == {"o3"}


def test_patient_is_accepted_and_kept_not_filtered() -> None:
    spec = parse_search("Observation", [("patient", PATIENT)], strict=True)
    assert spec.patient == "p-opaque-1"
    assert len(apply(spec, RECORD)) == len(RECORD)


# -- every served type -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "param", "hit", "miss"),
    [
        ("Encounter", "date", {"period": {"start": "2026-05-20T08:00:00+02:00"}}, {
            "period": {"start": "2026-05-01T08:00:00+02:00", "end": "2026-05-02T08:00:00+02:00"}
        }),
        ("Appointment", "date", {"start": "2026-05-20T09:00:00+02:00"}, {
            "start": "2026-05-21T09:00:00+02:00"
        }),
        ("Condition", "onset-date", {"onsetDateTime": "2026-05-20"}, {"onsetDateTime": "2025"}),
        ("Condition", "recorded-date", {"recordedDate": "2026-05-20"}, {
            "recordedDate": "2026-05-19"
        }),
        ("MedicationRequest", "authoredon", {"authoredOn": "2026-05-20T10:00:00+02:00"}, {
            "authoredOn": "2026-05-19"
        }),
        ("DocumentReference", "date", {"date": "2026-05-20T10:00:00+02:00"}, {
            "date": "2026-05-21T00:30:00+02:00"
        }),
        ("AllergyIntolerance", "date", {"recordedDate": "2026-05-20T10:00:00+02:00"}, {
            "onsetDateTime": "2026-05-20", "recordedDate": "2026-05-21T10:00:00+02:00"
        }),
        ("Immunization", "date", {"occurrenceDateTime": "2026-05-20T10:15:00+02:00"}, {
            "occurrenceDateTime": "2026-05-19", "recorded": "2026-05-20T10:15:00+02:00"
        }),
        ("Procedure", "date", {"performedDateTime": "2026-05-20T10:15:00+02:00"}, {
            "performedPeriod": {"start": "2026-05-19T22:00:00+02:00",
                                "end": "2026-05-20T01:00:00+02:00"}
        }),
        ("CarePlan", "date", {"period": {"start": "2026-05-20", "end": "2026-05-20"}}, {
            "period": {"start": "2026-05-19"}, "created": "2026-05-20"
        }),
        ("CareTeam", "date", {"period": {"start": "2026-05-20T08:00:00+02:00",
                                         "end": "2026-05-20T16:00:00+02:00"}}, {
            "period": {"end": "2026-05-19"}
        }),
        ("Flag", "date", {"period": {"start": "2026-05-20", "end": "2026-05-20"}}, {
            "period": {"start": "2026-05-21"}
        }),
    ],
)  # fmt: skip
def test_date_paths_per_type(
    resource_type: str, param: str, hit: dict[str, Any], miss: dict[str, Any]
) -> None:
    resources = [
        {"resourceType": resource_type, "id": "hit", **hit},
        {"resourceType": resource_type, "id": "miss", **miss},
    ]
    # An ongoing encounter (no end) still overlaps later days: ge matches, eq does not.
    spec = parse_search(resource_type, [(param, "2026-05-20")], strict=True)
    expected = ["hit"] if resource_type != "Encounter" else []
    assert [r["id"] for r in apply(spec, resources)] == expected
    if resource_type == "Encounter":
        spec = parse_search(resource_type, [(param, "ge2026-05-20")], strict=True)
        assert [r["id"] for r in apply(spec, resources)] == ["hit"]


def test_condition_has_no_date_parameter_in_r4() -> None:
    assert "date" not in search_params_for("Condition")
    spec = parse_search("Condition", [("date", "2026")], strict=False)
    assert spec.unsupported == ("date",)


def test_medication_code_and_document_type() -> None:
    atc = "http://www.whocc.no/atc"
    meds = [
        {"resourceType": "MedicationRequest", "id": "m1", "status": "active",
         "medicationCodeableConcept": {"coding": [{"system": atc, "code": "C09AA05"}]}},
        {"resourceType": "MedicationRequest", "id": "m2", "status": "stopped",
         "medicationCodeableConcept": {"coding": [{"system": atc, "code": "A10BA02"}]}},
    ]  # fmt: skip
    spec = parse_search("MedicationRequest", [("code", f"{atc}|C09AA05")], strict=True)
    assert [r["id"] for r in apply(spec, meds)] == ["m1"]
    docs = [{"resourceType": "DocumentReference", "id": "d1", "type": {"coding": [
        {"system": LOINC, "code": "11506-3"}]}}]  # fmt: skip
    spec = parse_search("DocumentReference", [("type", "11506-3")], strict=True)
    assert [r["id"] for r in apply(spec, docs)] == ["d1"]


SNOMED = "http://snomed.info/sct"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


def allergy(
    resource_id: str, code: str, clinical: str, verified: str, **extra: Any
) -> FhirResource:
    return {
        "resourceType": "AllergyIntolerance",
        "id": resource_id,
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": clinical}]},
        "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION, "code": verified}]},
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "patient": {"reference": PATIENT},
        **extra,
    }


ALLERGIES = [
    allergy("penicillin", "764146007", "active", "confirmed", category=["medication"],
            criticality="high"),
    allergy("birch", "256915002", "active", "confirmed", category=["environment"],
            criticality="low"),
    allergy("lactose", "47703008", "resolved", "unconfirmed", category=["food"],
            criticality="unable-to-assess"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("clinical-status", "active")], ["birch", "penicillin"]),
        ([("clinical-status", f"{ALLERGY_CLINICAL}|resolved")], ["lactose"]),
        ([("verification-status", "unconfirmed")], ["lactose"]),
        ([("category", "medication,food")], ["lactose", "penicillin"]),
        ([("criticality", "high")], ["penicillin"]),
        ([("criticality:not", "high")], ["birch", "lactose"]),
        ([("code", f"{SNOMED}|256915002")], ["birch"]),
        ([("patient", PATIENT), ("criticality", "low")], ["birch"]),
    ],
)
def test_allergy_parameters(params: list[tuple[str, str]], expected: list[str]) -> None:
    spec = parse_search("AllergyIntolerance", params, strict=True)
    assert [r["id"] for r in apply(spec, ALLERGIES)] == expected


def test_immunization_parameters() -> None:
    atc = "http://www.whocc.no/atc"
    shots = [
        {"resourceType": "Immunization", "id": "flu", "status": "completed",
         "vaccineCode": {"coding": [{"system": atc, "code": "J07BB02"}]},
         "patient": {"reference": PATIENT}, "occurrenceDateTime": "2024-10-21T10:15:00+02:00"},
        {"resourceType": "Immunization", "id": "covid", "status": "not-done",
         "vaccineCode": {"coding": [{"system": atc, "code": "J07BN01"}]},
         "patient": {"reference": PATIENT}, "occurrenceDateTime": "2021-01-14"},
    ]  # fmt: skip
    for params, expected in (
        ([("vaccine-code", f"{atc}|J07BB02")], ["flu"]),
        ([("status", "not-done")], ["covid"]),
        ([("date", "lt2022")], ["covid"]),
        ([("patient", PATIENT), ("_sort", "-date")], ["flu", "covid"]),
    ):
        spec = parse_search("Immunization", params, strict=True)
        assert [r["id"] for r in apply(spec, shots)] == expected, params
    assert search_params_for("Immunization")["patient"] == "reference"
    assert includes_for("Immunization") == ("*", "Immunization:patient")


KVA = "urn:oid:1.2.752.116.1.3.2.1.4"
HSA = "urn:oid:1.2.752.129.2.1.4.1"


def _unit(reference: str, hsa_id: str) -> dict[str, Any]:
    return {"reference": reference, "identifier": {"system": HSA, "value": hsa_id}}


PROCEDURES = [
    {"resourceType": "Procedure", "id": "cardioversion", "status": "completed",
     "code": {"coding": [{"system": KVA, "code": "DF027"}]},
     "category": {"coding": [{"system": SNOMED, "code": "387713003"}]},
     "subject": {"reference": PATIENT}, "performedDateTime": "2025-11-04T09:30:00+01:00",
     "performer": [{"actor": _unit("Organization/vast.hjrt", "SE2321009002-HJRT")}]},
    {"resourceType": "Procedure", "id": "appendectomy", "status": "completed",
     "code": {"coding": [{"system": KVA, "code": "JEA00"}]},
     "subject": {"reference": PATIENT}, "performedDateTime": "1961-08-14",
     "performer": [{"actor": {"display": "Lasarettet i Sundsvik"}}]},
]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("code", f"{KVA}|JEA00")], ["appendectomy"]),
        ([("subject", PATIENT), ("status", "completed")], ["appendectomy", "cardioversion"]),
        ([("category", "387713003")], ["cardioversion"]),
        ([("date", "lt2000")], ["appendectomy"]),
        ([("performer", "Organization/vast.hjrt")], ["cardioversion"]),
        ([("performer:identifier", f"{HSA}|SE2321009002-HJRT")], ["cardioversion"]),
        ([("performer:identifier", "SE2321009002-HJRT")], ["cardioversion"]),
        # An identifier is searched with :identifier, not as the reference itself.
        ([("performer", "SE2321009002-HJRT")], []),
        # A performer named only by display is there, though no reference search matches it.
        ([("performer:missing", "true")], []),
        ([("performer:missing", "false")], ["appendectomy", "cardioversion"]),
        ([("performer", "Organization/other")], []),
    ],
)
def test_procedure_parameters(params: list[tuple[str, str]], expected: list[str]) -> None:
    spec = parse_search("Procedure", params, strict=True)
    assert [r["id"] for r in apply(spec, PROCEDURES)] == expected
    assert spec.patient in (None, "p-opaque-1")


def test_subject_names_the_patient_and_a_patient_takes_no_identifier_modifier() -> None:
    spec = parse_search("CarePlan", [("subject", PATIENT)], strict=True)
    assert spec.patient == "p-opaque-1"
    assert spec.filters == ()
    with pytest.raises(BadRequest, match="subject must be a Patient id"):
        parse_search("Flag", [("subject", "Group/g1")], strict=True)
    spec = parse_search("Procedure", [("patient:identifier", "x")], strict=False)
    assert spec.unsupported == ("patient:identifier",)
    # R4 defines subject for the types whose subject is the patient, and only those.
    assert "subject" in search_params_for("Observation")
    for resource_type in ("Appointment", "AllergyIntolerance", "Immunization"):
        assert "subject" not in search_params_for(resource_type)


def test_care_plan_care_team_and_flag_parameters() -> None:
    flag_category = "http://terminology.hl7.org/CodeSystem/flag-category"
    record = [
        {"resourceType": "CarePlan", "id": "sip", "status": "active", "intent": "plan",
         "category": [{"coding": [{"system": SNOMED, "code": "734163000"}]}],
         "subject": {"reference": PATIENT}, "period": {"start": "2026-03-02"}},
        {"resourceType": "CarePlan", "id": "diabetes", "status": "completed", "intent": "order",
         "category": [{"coding": [{"system": SNOMED, "code": "698360004"}]}],
         "subject": {"reference": PATIENT},
         "period": {"start": "2024-01-10", "end": "2025-01-10"}},
        {"resourceType": "CareTeam", "id": "team", "status": "active",
         "category": [{"coding": [{"system": LOINC, "code": "LA27976-2"}]}],
         "subject": {"reference": PATIENT}, "period": {"start": "2026-03-02"}},
        {"resourceType": "Flag", "id": "anticoagulant", "status": "active",
         "category": [{"coding": [{"system": flag_category, "code": "drug"}]}],
         "code": {"text": "Antikoagulantia"}, "subject": {"reference": PATIENT},
         "period": {"start": "2026-06-02"}},
        {"resourceType": "Flag", "id": "mrsa", "status": "inactive",
         "category": [{"coding": [{"system": flag_category, "code": "contact"}]}],
         "code": {"text": "MRSA"}, "subject": {"reference": PATIENT},
         "period": {"start": "2018-02-01", "end": "2019-03-15"}},
    ]  # fmt: skip
    for resource_type, params, expected in (
        ("CarePlan", [("intent", "plan")], ["sip"]),
        ("CarePlan", [("status", "completed")], ["diabetes"]),
        ("CarePlan", [("category", f"{SNOMED}|698360004")], ["diabetes"]),
        ("CarePlan", [("date", "ge2026")], ["sip"]),
        ("CareTeam", [("status", "active"), ("category", "LA27976-2")], ["team"]),
        ("CareTeam", [("date", "lt2026")], []),
        ("Flag", [("status", "active")], ["anticoagulant"]),
        ("Flag", [("category", f"{flag_category}|contact")], ["mrsa"]),
        ("Flag", [("date", "2019")], []),
        ("Flag", [("date", "ap2019-01-01")], ["mrsa"]),
        ("Flag", [("patient", PATIENT), ("_sort", "date")], ["mrsa", "anticoagulant"]),
    ):
        spec = parse_search(resource_type, params, strict=True)
        assert [r["id"] for r in apply(spec, record)] == expected, (resource_type, params)
    assert includes_for("CarePlan") == (
        "*",
        "CarePlan:patient",
        "CarePlan:subject",
        "CarePlan:encounter",
        "CarePlan:care-team",
        "CarePlan:condition",
    )
    assert "CarePlan:care-team" in revincludes_for("CareTeam")
    assert "Flag:encounter" in revincludes_for("Encounter")


def test_other_types_are_left_out() -> None:
    mixed = [*RECORD, {"resourceType": "Condition", "id": "c1"}]
    assert "c1" not in ids([], mixed)
    assert len(ids([], mixed)) == len(RECORD)


def test_every_advertised_parameter_is_accepted_strictly() -> None:
    sample = {"token": "x", "date": "2026-05", "reference": "Patient/p1", "string": "x"}
    for resource_type in served_types():
        for name, kind in search_params_for(resource_type).items():
            spec = parse_search(resource_type, [(name, sample[kind])], strict=True)
            assert spec.unsupported == ()
            assert spec.params == ((name, sample[kind]),)
        assert set(sortable_for(resource_type)) <= set(search_params_for(resource_type))
        for name in sortable_for(resource_type):
            assert parse_search(resource_type, [("_sort", f"-{name}")], strict=True).sort
        for value in includes_for(resource_type):
            assert parse_search(resource_type, [("_include", value)], strict=True).include
        for value in revincludes_for(resource_type):
            assert parse_search(resource_type, [("_revinclude", value)], strict=True).revinclude


# -- sorting -----------------------------------------------------------------------------


def test_sort_by_date_both_ways_missing_last() -> None:
    assert ids([("_sort", "date")]) == ["o2", "o3", "o4", "o1", "o6", "o5"]
    assert ids([("_sort", "-date")]) == ["o6", "o1", "o4", "o3", "o2", "o5"]


def test_default_order_and_ties_are_by_id() -> None:
    same = {"effectiveDateTime": "2026-05-20T08:00:00+02:00"}
    resources = [observation(i, effective=same) for i in ("c", "a", "b")]
    assert ids([], resources) == ["a", "b", "c"]
    assert ids([("_sort", "-date")], resources) == ["a", "b", "c"]


def test_sort_by_several_keys() -> None:
    # status first (amended < final < preliminary), then newest first within a status
    assert ids([("_sort", "status,-date")]) == ["o4", "o6", "o1", "o3", "o5", "o2"]
    assert ids([("_sort", "-_lastUpdated")]) == ["o1", "o2", "o3", "o4", "o5", "o6"]
    assert ids([("_sort", "-_id")]) == ["o6", "o5", "o4", "o3", "o2", "o1"]


def test_apply_does_not_change_its_input() -> None:
    before = copy.deepcopy(RECORD)
    spec = parse_search("Observation", [("_sort", "-date"), ("_elements", "status")], strict=True)
    for resource in apply(spec, RECORD):
        elements(spec, resource)
    assert before == RECORD


# -- result parameters -------------------------------------------------------------------


def test_elements_projection_is_tagged_subsetted() -> None:
    source = RECORD[0]
    spec = parse_search(
        "Observation", [("_elements", "effective,Observation.subject")], strict=True
    )
    projected = elements(spec, source)
    # id, meta and the mandatory status and code stay; the choice element comes whole.
    assert set(projected) == {
        "resourceType", "id", "meta", "status", "code", "subject", "effectiveDateTime"
    }  # fmt: skip
    assert projected["meta"]["tag"][0] == source["meta"]["tag"][0]
    assert dict(SUBSETTED_TAG) in projected["meta"]["tag"]
    assert SUBSETTED_TAG not in source["meta"]["tag"]
    assert elements(spec, projected)["meta"]["tag"].count(dict(SUBSETTED_TAG)) == 1


def test_elements_choice_does_not_match_other_elements() -> None:
    spec = parse_search("Observation", [("_elements", "value")], strict=True)
    resource = {**RECORD[0], "valueString": "x", "valuesX": 1}
    projected = elements(spec, resource)
    assert "valueQuantity" in projected
    assert "valueString" in projected
    assert "valuesX" not in projected


def test_no_subsetting_returns_the_resource_itself() -> None:
    spec = parse_search("Observation", [], strict=True)
    assert elements(spec, RECORD[0]) is RECORD[0]
    assert not spec.subsetted


def test_summary_data_and_count() -> None:
    spec = parse_search("Observation", [("_summary", "data")], strict=True)
    projected = elements(spec, RECORD[0])
    assert "text" not in projected
    assert "valueQuantity" in projected
    assert dict(SUBSETTED_TAG) in projected["meta"]["tag"]
    assert parse_search("Observation", [("_summary", "count")], strict=True).summary == "count"
    assert parse_search("Observation", [("_count", "0")], strict=True).summary == "count"
    assert parse_search("Observation", [("_summary", "false")], strict=True).summary is None


def test_summary_true_keeps_the_summary_elements_and_text_the_narrative() -> None:
    resource = {**RECORD[0], "note": [{"text": "x"}], "interpretation": [{"text": "H"}]}
    summary = elements(parse_search("Observation", [("_summary", "true")], strict=True), resource)
    # Observation's summary elements (FHIR's Σ) and what is mandatory; no narrative, no notes.
    assert set(summary) == {
        "resourceType",
        "id",
        "meta",
        "status",
        "code",
        "subject",
        "effectiveDateTime",
        "valueQuantity",
    }
    assert dict(SUBSETTED_TAG) in summary["meta"]["tag"]
    text = elements(parse_search("Observation", [("_summary", "text")], strict=True), resource)
    assert set(text) == {"resourceType", "id", "meta", "text", "status", "code"}
    assert dict(SUBSETTED_TAG) in text["meta"]["tag"]
    assert "note" in resource  # the input is not changed
    with pytest.raises(BadRequest, match="_summary"):
        parse_search("Observation", [("_summary", "short")], strict=False)


def test_total() -> None:
    for value in ("none", "estimate", "accurate"):
        spec = parse_search("Observation", [("_total", value)], strict=True)
        assert spec.total == value
        assert spec.params == (("_total", value),)
    with pytest.raises(BadRequest, match="_total"):
        parse_search("Observation", [("_total", "some")], strict=False)


def _document(resource_id: str, description: str) -> FhirResource:
    return {
        "resourceType": "DocumentReference",
        "id": resource_id,
        "status": "current",
        "subject": {"reference": PATIENT},
        "description": description,
        "type": {"text": "Epikris", "coding": [{"code": "x", "display": "Utskrivning"}]},
        "content": [],
    }


DOCUMENTS = [
    _document("d1", "Återbesök hjärtmottagningen"),
    _document("d2", "återbesök"),
    _document("d3", "Remissvar: besök på vårdcentral"),
]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # Starts with, ignoring case and accents.
        ([("description", "aterbesok")], ["d1", "d2"]),
        ([("description", "ÅTERBESÖK H")], ["d1"]),
        ([("description", "besök")], []),
        ([("description", "remiss,återbesök hj")], ["d1", "d3"]),
        # Exactly: case and accents count, the whole value.
        ([("description:exact", "återbesök")], ["d2"]),
        ([("description:exact", "Återbesök")], []),
        # Anywhere in the value.
        ([("description:contains", "BESOK")], ["d1", "d2", "d3"]),
        ([("description:contains", "vårdcentral")], ["d3"]),
        ([("description:missing", "false")], ["d1", "d2", "d3"]),
        # A token's text: CodeableConcept.text and its codings' display.
        ([("type:text", "epik")], ["d1", "d2", "d3"]),
        ([("type:text", "utskr")], ["d1", "d2", "d3"]),
        ([("type:text", "remiss")], []),
    ],
)
def test_string_parameters_and_token_text(
    params: list[tuple[str, str]], expected: list[str]
) -> None:
    spec = parse_search("DocumentReference", params, strict=True)
    assert [r["id"] for r in apply(spec, DOCUMENTS)] == expected


def test_string_modifiers_belong_to_strings() -> None:
    spec = parse_search(
        "Observation", [("code:exact", "x"), ("status:contains", "f")], strict=False
    )
    assert spec.unsupported == ("code:exact", "status:contains")
    spec = parse_search("DocumentReference", [("description:text", "x")], strict=False)
    assert spec.unsupported == ("description:text",)
    assert search_params_for("Immunization")["lot-number"] == "string"
    assert search_params_for("Observation")["value-string"] == "string"
    assert "description" in sortable_for("DocumentReference")
    spec = parse_search("DocumentReference", [("_sort", "-description")], strict=True)
    # Case ignored; Swedish letters after z, as in the alphabet.
    assert [r["id"] for r in apply(spec, DOCUMENTS)] == ["d1", "d2", "d3"]


def test_count() -> None:
    assert parse_search("Observation", [], strict=True).count == DEFAULT_COUNT
    assert parse_search("Observation", [("_count", "7")], strict=True).count == 7
    assert parse_search("Observation", [("_count", "5000")], strict=True).count == MAX_COUNT


def test_include_and_revinclude() -> None:
    spec = parse_search(
        "Observation",
        [
            ("_include", "Observation:patient:Patient"),
            ("_include", "Observation:patient"),
            ("_revinclude", "Provenance:target"),
        ],
        strict=True,
    )
    assert spec.include == ("Observation:patient",)
    assert spec.revinclude == ("Provenance:target",)
    lenient = parse_search("Observation", [("_include", "Encounter:subject")], strict=False)
    assert lenient.include == ()
    assert lenient.unsupported == ("_include",)


def test_params_reparse_to_the_same_search() -> None:
    given_params = [
        ("patient", PATIENT),
        ("date", "ge2026-05-01"),
        ("_sort", "-date,nonsense"),
        ("_count", "2"),
        ("_format", "json"),
        ("code", ""),
    ]
    first = parse_search("Observation", given_params, strict=False)
    again = parse_search("Observation", list(first.params), strict=True)
    assert ("_count", "2") not in first.params
    assert ("_sort", "-date") in first.params
    assert apply(first, RECORD) == apply(again, RECORD)


# -- what is refused, and how --------------------------------------------------------------


def test_unknown_parameters_lenient_and_strict() -> None:
    params = [("foo", PNR), ("code:in", "x"), ("date:not", "2026")]
    spec = parse_search("Observation", params, strict=False)
    assert spec.unsupported == ("foo", "code:in", "date:not")
    assert spec.filters == ()
    with pytest.raises(BadRequest) as caught:
        parse_search("Observation", params, strict=True)
    assert "foo" in caught.value.message
    assert PNR not in caught.value.message


def test_a_name_that_looks_like_an_identity_number_is_not_echoed() -> None:
    spec = parse_search("Observation", [(PNR, "x")], strict=False)
    assert PNR not in "".join(spec.unsupported)
    with pytest.raises(BadRequest) as caught:
        parse_search("Observation", [(f"pnr{PNR}", "x")], strict=True)
    assert PNR not in caught.value.message


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ([("date", PNR)], "date"),
        ([("date", f"xx{PNR}")], "date"),
        ([("date", "2026-13-01")], "date"),
        ([("date", "2026-02-30")], "date"),
        ([("date", "2026-05-20T10:00:00+24:00")], "date"),  # no such offset
        ([("date", "le2026-05-20T10:00 25:30")], "date"),  # the "+" unencoded
        ([("date", f"ge2026-05-01,{PNR}")], "date"),
        ([("_lastUpdated", "yesterday")], "_lastUpdated"),
        ([("_count", "abc")], "_count"),
        ([("_count", "-1")], "_count"),
        ([("_count", "1"), ("_count", "2")], "_count"),
        ([("code", "|")], "code"),
        ([("code", f"a|b|{PNR}")], "code"),
        ([("_sort", "date,,status")], "_sort"),
        ([("_summary", PNR)], "_summary"),
        ([("_elements", f"status,{PNR}")], "_elements"),
        ([("_include", PNR)], "_include"),
        ([("patient", f"Patient/{PNR}/x")], "patient"),
        ([("patient", "a,b")], "patient"),
        ([("patient", "a"), ("patient", "Patient/b")], "patient"),
        ([("date:missing", PNR)], "date"),
    ],
)
def test_malformed_values_name_the_parameter_not_the_value(
    params: list[tuple[str, str]], named: str
) -> None:
    for strict in (True, False):
        with pytest.raises(BadRequest) as caught:
            parse_search("Observation", params, strict=strict)
        assert named in caught.value.message
        assert PNR not in caught.value.message
        assert caught.value.status == 400
