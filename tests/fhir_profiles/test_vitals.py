"""Vital signs, growth and assessments: the profile chosen by category, the units of the
vital signs, and laboratory rules that never touch them; MedicationDispense's profile."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_profiles.normalise import normalise_resource
from fhir_profiles.resource_types import (
    ALL_PROFILES,
    LAB_OBSERVATION_PROFILE,
    SURVEY_OBSERVATION_PROFILE,
    VITAL_SIGNS_PROFILE,
    profile_for,
)
from fhir_profiles.units import ORIGINAL_QUANTITY_URL
from fhir_profiles.validate import profiles, validate

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def category(code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": CATEGORY, "code": code}]}]


def quantity(value: float, code: str) -> dict[str, Any]:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def vital(loinc: str, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "nord.v1",
        "meta": {"source": "urn:samlad:source:nord#Observation/v1"},
        "status": "final",
        "category": category("vital-signs"),
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": "2024-03-05T09:10:00+01:00",
        **extra,
    }
    return {key: value for key, value in resource.items() if value is not None}


def blood_pressure(systolic: dict[str, Any], diastolic: dict[str, Any]) -> dict[str, Any]:
    return vital(
        "85354-9",
        component=[
            {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": systolic},
            {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": diastolic},
        ],
    )


def test_the_profile_is_chosen_by_category() -> None:
    assert profile_for(vital("8867-4")) == VITAL_SIGNS_PROFILE
    assert profile_for(vital("8867-4", category=category("survey"))) == SURVEY_OBSERVATION_PROFILE
    assert profile_for(vital("718-7", category=category("laboratory"))) == LAB_OBSERVATION_PROFILE
    # No category, or one without a profile of its own: the type's profile, as before.
    assert profile_for(vital("718-7", category=None)) == LAB_OBSERVATION_PROFILE
    assert profile_for(vital("718-7", category=category("exam"))) == LAB_OBSERVATION_PROFILE
    assert profile_for({"resourceType": "Bundle"}) is None
    assert set(profiles()) >= ALL_PROFILES


@pytest.mark.parametrize(
    ("loinc", "sent", "shown"),
    [
        ("29463-7", quantity(3480, "g"), (3.48, "kg")),
        ("29463-7", quantity(176, "[lb_av]"), (79.8, "kg")),
        ("8302-2", quantity(1.78, "m"), (178, "cm")),
        ("9843-4", quantity(13.8, "[in_i]"), (35.1, "cm")),
        ("8310-5", quantity(100.4, "[degF]"), (38.0, "Cel")),
        ("8867-4", quantity(72, "{beats}/min"), (72, "/min")),
    ],
)
def test_a_vital_sign_is_shown_in_its_unit_with_the_original_kept(
    loinc: str, sent: dict[str, Any], shown: tuple[float, str]
) -> None:
    observation = vital(loinc, valueQuantity=copy.deepcopy(sent))
    issues: list[str] = []
    assert normalise_resource(observation, issues)
    value = observation["valueQuantity"]
    assert (value["value"], value["code"]) == shown
    assert value["extension"] == [{"url": ORIGINAL_QUANTITY_URL, "valueQuantity": sent}]
    assert issues == []
    assert validate(observation) == []


def test_blood_pressure_components_are_converted_each_by_its_code() -> None:
    observation = blood_pressure(quantity(18.7, "kPa"), quantity(80, "mm[Hg]"))
    assert normalise_resource(observation)
    systolic, diastolic = (c["valueQuantity"] for c in observation["component"])
    assert (systolic["value"], systolic["code"]) == (140, "mm[Hg]")
    assert diastolic == quantity(80, "mm[Hg]")  # already in its unit: untouched
    assert validate(observation) == []


def test_laboratory_rules_never_touch_a_vital_sign() -> None:
    # In a unit nobody converts, with a reference range: left as sent, and no
    # "no known analysis" note (that is a laboratory rule).
    observation = vital(
        "2708-6",
        valueQuantity=quantity(97, "%"),
        referenceRange=[{"low": quantity(95, "%")}],
    )
    sent = copy.deepcopy(observation)
    issues: list[str] = []
    normalise_resource(observation, issues)
    assert observation == sent
    assert issues == []
    assert validate(observation) == []
    odd = vital("8867-4", valueQuantity=quantity(1.2, "Hz"))
    normalise_resource(odd, issues)
    assert issues == ["Observation.valueQuantity: no known conversion to /min, left as sent"]
    assert {i.key for i in validate(odd)} == {"samlad-vs-3"}  # a warning only
    # The same reading filed as a lab result still gets the laboratory's note.
    lab = vital("2708-6", category=category("laboratory"), valueQuantity=quantity(97, "%"))
    lab_issues: list[str] = []
    normalise_resource(lab, lab_issues)
    assert lab_issues == ["Observation.code: no known analysis, units left as sent"]


def test_the_vital_signs_profile_rules() -> None:
    keys = {i.key for i in validate(vital("8867-4", code={"text": "puls"}, valueInteger=72))}
    assert keys == {"samlad-vs-1"}
    not_ucum = blood_pressure({"value": 140, "unit": "mmHg"}, quantity(80, "mm[Hg]"))
    assert {i.key for i in validate(not_ucum)} == {"samlad-vs-2"}
    assert {i.key for i in validate(vital("8867-4"))} == {"samlad-obs-4"}
    absent = vital("8867-4", dataAbsentReason={"text": "not measured"})
    assert validate(absent) == []
    no_effective = vital("8867-4", effectiveDateTime=None, valueQuantity=quantity(72, "/min"))
    assert any(i.path.endswith("effective[x]") for i in validate(no_effective))


def test_an_assessment_needs_a_value_or_components() -> None:
    adl = vital(
        "96761-2",
        category=category("survey"),
        valueInteger=85,
        code={"coding": [{"system": LOINC, "code": "96761-2"}], "text": "Barthel ADL-index"},
    )
    assert validate(adl) == []
    del adl["valueInteger"]
    assert {i.key for i in validate(adl)} == {"samlad-obs-4"}


def dispense(**extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationDispense",
        "id": "nord.d1",
        "meta": {"source": "urn:samlad:source:nord#MedicationDispense/d1"},
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": "urn:oid:1.2.752.129.2.2.3.1.1", "code": "C09AA02"}]
        },
        "subject": {"reference": "Patient/p"},
        "authorizingPrescription": [{"reference": "MedicationRequest/nord.rx1"}],
        "quantity": {"value": 98, "unit": "tablett", "system": UCUM, "code": "{tablet}"},
        "whenHandedOver": "2025-02-03T14:12:00",
        **extra,
    }
    return {key: value for key, value in resource.items() if value is not None}


def test_a_dispense_is_normalised_and_validates() -> None:
    emitted = dispense()
    assert normalise_resource(emitted)
    assert emitted["whenHandedOver"] == "2025-02-03T14:12:00+01:00"
    assert emitted["medicationCodeableConcept"]["coding"][0]["system"] == "http://www.whocc.no/atc"
    assert validate(emitted) == []
    assert {i.key for i in validate(dispense())} >= {"samlad-mr-1"}
    wrong = {i.path for i in validate(dispense(status="dispensed", subject=None))}
    assert {"MedicationDispense.status", "MedicationDispense.subject"} <= wrong
