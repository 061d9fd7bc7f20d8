"""The validator: R4 structure (fhirkit), base rules it misses, and the Samlad profiles."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_profiles.normalise import normalise_resource
from fhir_profiles.validate import (
    PROFILE_FOR_TYPE,
    PROFILE_RULES,
    errors,
    profiles,
    structural_issues,
    validate,
)
from simregions.data import build_region_data
from simregions.regions import DEFAULT_REGIONS

GATEWAY_TYPES = (
    "Patient",
    "Observation",
    "MedicationRequest",
    "Appointment",
    "Encounter",
    "Condition",
    "DocumentReference",
    "AllergyIntolerance",
    "Immunization",
    "Procedure",
    "CarePlan",
    "CareTeam",
    "Flag",
    "DiagnosticReport",
    "ServiceRequest",
)


def _as_emitted(resource: dict[str, Any], region: str) -> dict[str, Any]:
    """A simulated resource as the gateway would emit it: normalised, meta.source set."""
    emitted = copy.deepcopy(resource)
    emitted.setdefault("meta", {})["source"] = f"urn:samlad:source:{region}#x"
    normalise_resource(emitted)
    return emitted


@pytest.fixture(scope="module")
def emitted() -> list[dict[str, Any]]:
    return [
        _as_emitted(resource, region.id)
        for region in DEFAULT_REGIONS
        for resource in build_region_data(region).resources
        if resource["resourceType"] in GATEWAY_TYPES
        # Väst's own Patient carries only its local system; the gateway emits a unified one.
        and not (resource["resourceType"] == "Patient" and region.id == "vast")
    ]


def test_every_normalised_simulated_resource_validates(emitted: list[dict[str, Any]]) -> None:
    failures = [(r["resourceType"], str(i)) for r in emitted for i in validate(r)]
    assert failures == []
    assert {r["resourceType"] for r in emitted} == set(GATEWAY_TYPES)


def test_syd_without_normalisation_fails_structurally() -> None:
    syd = build_region_data(DEFAULT_REGIONS[2]).resources
    local = next(
        r
        for r in syd
        if str(r.get("effectiveDateTime", "Z"))[-1].isdigit() and len(r["effectiveDateTime"]) == 19
    )
    assert any(i.path.endswith("effectiveDateTime") for i in structural_issues(local))


def test_profiles_and_their_rules_are_in_step() -> None:
    keys = {key for profile in profiles().values() for key in profile.constraint_keys}
    assert keys == set(PROFILE_RULES)
    assert set(PROFILE_FOR_TYPE.values()) <= set(profiles())
    for url, profile in profiles().items():
        assert url.startswith("https://samlad.se/fhir/StructureDefinition/")
        assert profile.definition["fhirVersion"] == "4.0.1"
        assert "hl7.se" not in str(profile.definition["baseDefinition"])
        assert structural_issues(dict(profile.definition)) == []


def _obs(**changes: Any) -> dict[str, Any]:
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "nord.1",
        "meta": {"source": "urn:samlad:source:nord#Observation/1"},
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": "2026-05-20T07:48:00+02:00",
        "valueQuantity": {
            "value": 128,
            "unit": "g/L",
            "system": "http://unitsofmeasure.org",
            "code": "g/L",
        },
    }
    observation.update(changes)
    return {key: value for key, value in observation.items() if value is not None}


def _keys(resource: dict[str, Any]) -> set[str | None]:
    return {issue.key or issue.layer for issue in validate(resource)}


def test_a_good_observation_passes() -> None:
    assert validate(_obs()) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"code": {"coding": [{"system": "urn:oid:1.2.208.176.2.1", "code": "NPU28309"}]}},
            "samlad-obs-1",
        ),
        ({"valueQuantity": {"value": 128, "unit": "g/L"}}, "samlad-obs-2"),
        (
            {
                "valueQuantity": {
                    "value": 12.8,
                    "system": "http://unitsofmeasure.org",
                    "code": "g/dL",
                }
            },
            "samlad-obs-3",
        ),
        ({"meta": {"versionId": "1"}}, "profile"),
        ({"status": "bogus"}, "binding"),
        ({"effectiveDateTime": "2026-05-20T07:48:00"}, "structure"),
        ({"id": "has space"}, "binding"),
        ({"extension": [{"url": "http://x"}]}, "ext-1"),
        (
            {
                "effectiveDateTime": None,
                "effectivePeriod": {"start": "2026-05-21", "end": "2026-05-20"},
            },
            "per-1",
        ),
    ],
)
def test_observation_problems_are_found(changes: dict[str, Any], expected: str) -> None:
    assert expected in _keys(_obs(**changes))


def test_canonical_unit_is_only_a_warning() -> None:
    observation = _obs(
        valueQuantity={"value": 12.8, "system": "http://unitsofmeasure.org", "code": "g/dL"}
    )
    assert [i.key for i in validate(observation) if i.severity == "warning"] == ["samlad-obs-3"]
    assert errors(observation) == []


def test_other_types_rules() -> None:
    meta = {"source": "urn:samlad:source:x#y"}
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "meta": meta,
        "identifier": [
            {
                "system": "http://electronichealth.se/identifier/personnummer",
                "value": "19121212-1212",
            }
        ],
    }
    assert "samlad-pat-1" in _keys(patient)
    patient["identifier"][0]["value"] = "191212121212"
    assert validate(patient) == []
    request = {
        "resourceType": "MedicationRequest",
        "meta": meta,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {
            "coding": [{"system": "urn:oid:1.2.752.129.2.2.3.1.1", "code": "B01AF02"}]
        },
    }
    assert "samlad-mr-1" in _keys(request)
    appointment = {
        "resourceType": "Appointment",
        "meta": meta,
        "status": "booked",
        "start": "2026-12-01T10:00:00Z",
        "participant": [{"actor": {"reference": "Location/l"}, "status": "accepted"}],
    }
    assert {"samlad-app-1", "app-2", "app-3"} <= _keys(appointment)
    condition = {
        "resourceType": "Condition",
        "meta": meta,
        "subject": {"reference": "Patient/p"},
        "code": {"text": "x"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "entered-in-error",
                }
            ]
        },
        "abatementDateTime": "2026-01-01",
    }
    assert {"con-4", "con-5"} <= _keys(condition)
    document = {
        "resourceType": "DocumentReference",
        "meta": meta,
        "status": "current",
        "subject": {"reference": "Patient/p"},
        "content": [{"attachment": {"data": "aGVq"}}],
    }
    assert "samlad-doc-1" in _keys(document)
    outcome: dict[str, Any] = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "not-found", "diagnostics": "no patient 121212-1212"}
        ],
    }
    assert "samlad-oo-1" in _keys(outcome)
    outcome["issue"][0]["diagnostics"] = "source nord timed out after 2000 ms"
    assert validate(outcome) == []
    provenance: dict[str, Any] = {
        "resourceType": "Provenance",
        "target": [{"reference": "Observation/o"}],
        "recorded": "2026-01-01T10:00:00Z",
        "agent": [{"type": {"text": "source"}}],
    }
    assert "profile" in _keys(provenance)
    provenance["agent"][0]["who"] = {"display": "Region Nord"}
    assert validate(provenance) == []
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "meta": meta,
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "Patient/p"},
    }
    assert "profile" in _keys(encounter)
    encounter["period"] = {"start": "2026-01-01T10:00:00+01:00"}
    assert validate(encounter) == []


def test_allergy_and_immunization_rules() -> None:
    meta = {"source": "urn:samlad:source:x#y"}
    verification = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
    allergy: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "meta": meta,
        "patient": {"reference": "Patient/p"},
        "code": {"text": "Penicillin"},
        "criticality": "deadly",
        "verificationStatus": {"coding": [{"system": verification, "code": "confirmed"}]},
    }
    found = validate(allergy)
    assert "ait-1" in {i.key for i in found}, "no clinicalStatus though not entered in error"
    assert any(i.path == "AllergyIntolerance.criticality" for i in found)
    allergy["criticality"] = "high"
    allergy["verificationStatus"]["coding"][0]["code"] = "entered-in-error"
    allergy["clinicalStatus"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "code": "active",
            }
        ]
    }
    assert "ait-2" in _keys(allergy)
    del allergy["clinicalStatus"]
    assert errors(allergy) == []
    del allergy["patient"]
    assert "profile" in _keys(allergy)
    immunization: dict[str, Any] = {
        "resourceType": "Immunization",
        "meta": meta,
        "status": "given",
        "vaccineCode": {"text": "Influenza"},
        "patient": {"reference": "Patient/p"},
        "occurrenceDateTime": "2024-10-21",
    }
    assert any(i.path == "Immunization.status" for i in errors(immunization))
    immunization["status"] = "completed"
    assert errors(immunization) == []


def test_procedure_care_plan_care_team_and_flag_rules() -> None:
    meta = {"source": "urn:samlad:source:x#y"}
    subject = {"reference": "Patient/p"}
    procedure: dict[str, Any] = {
        "resourceType": "Procedure",
        "meta": meta,
        "status": "done",
        "subject": subject,
        "code": {"text": "Appendektomi"},
        "performedPeriod": {"start": "2025-11-04", "end": "2025-11-03"},
    }
    found = errors(procedure)
    assert any(i.path == "Procedure.status" for i in found)
    assert "per-1" in {i.key for i in found}
    procedure["status"] = "completed"
    procedure["performedPeriod"]["end"] = "2025-11-04"
    assert errors(procedure) == []
    del procedure["code"]
    assert "profile" in _keys(procedure), "the Samlad profile asks for the procedure's code"
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "meta": meta,
        "status": "active",
        "intent": "goal",
        "subject": subject,
        "activity": [{"detail": {"kind": "Visit", "status": "scheduled"}}],
    }
    paths = {i.path for i in errors(plan)}
    assert {"CarePlan.intent", "CarePlan.activity[0].detail.kind"} <= paths
    plan["intent"] = "plan"
    plan["activity"][0]["detail"]["kind"] = "Appointment"
    assert errors(plan) == []
    team = {"resourceType": "CareTeam", "meta": meta, "status": "done", "subject": subject}
    assert any(i.path == "CareTeam.status" for i in errors(team))
    flag: dict[str, Any] = {
        "resourceType": "Flag",
        "meta": meta,
        "status": "ended",
        "code": {"text": "Smitta"},
        "subject": subject,
    }
    assert any(i.path == "Flag.status" for i in errors(flag))
    flag["status"] = "inactive"
    assert errors(flag) == []


def test_report_and_request_rules() -> None:
    meta = {"source": "urn:samlad:source:x#y"}
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "meta": meta,
        "status": "done",
        "code": {"text": "Lipidstatus"},
        "subject": {"reference": "Patient/p"},
        "effectivePeriod": {"start": "2026-08-09T08:00:00Z", "end": "2026-08-09T07:00:00Z"},
    }
    found = errors(report)
    assert any(i.path == "DiagnosticReport.status" for i in found)
    assert "per-1" in {i.key for i in found}
    report["status"] = "final"
    report["effectivePeriod"]["end"] = "2026-08-09T09:00:00Z"
    assert errors(report) == []
    del report["subject"]
    assert "profile" in _keys(report)
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "meta": meta,
        "status": "active",
        "intent": "referral",
        "code": {"text": "Ultraljud hjärta"},
        "subject": {"reference": "Patient/p"},
    }
    assert any(i.path == "ServiceRequest.intent" for i in errors(request))
    request["intent"] = "order"
    assert errors(request) == []
    del request["code"]
    assert "profile" in _keys(request)


def test_bundle_entries_are_checked_against_their_profiles() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 2,
        "entry": [
            {
                "fullUrl": "https://samlad.example/fhir/Observation/nord.1",
                "resource": _obs(),
                "search": {"mode": "match"},
            },
            {"resource": _obs(status="bogus")},
        ],
    }
    found = validate(bundle)
    assert {i.key for i in found} >= {"samlad-bundle-1"}
    assert any(
        i.path.startswith("Bundle.entry[1].resource") and i.layer == "binding" for i in found
    )
    bundle["type"] = "collection"
    assert any(i.path == "Bundle.type" and i.layer == "profile" for i in validate(bundle))


@pytest.mark.parametrize(
    "resource",
    [
        None,
        [],
        "Patient",
        {},
        {"resourceType": 7},
        {"resourceType": "Nope"},
        {"resourceType": "Observation", "valueQuantity": {"value": float("nan")}},
        {"resourceType": "Observation", "code": {"coding": "x"}, "referenceRange": [1, 2]},
        {"resourceType": "Patient", "identifier": "x", "name": [[[]]], "id": "x" * 100_000},
        {
            "resourceType": "Bundle",
            "entry": [{"resource": {"resourceType": "Bundle", "entry": "x"}}],
        },
        {"resourceType": "Patient", "extension": {"url": 1}},
        {"resourceType": "Observation", "meta": {"source": {"x": {1, 2}}}},
    ],
)
def test_hostile_input_is_reported_not_raised(resource: Any) -> None:
    found = validate(resource)
    assert found
    assert all(issue.severity in ("error", "warning") for issue in found)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=150)
@given(
    st.sampled_from([*PROFILE_FOR_TYPE]),
    st.dictionaries(
        st.sampled_from(
            [
                "id",
                "meta",
                "status",
                "code",
                "subject",
                "valueQuantity",
                "entry",
                "issue",
                "identifier",
                "period",
                "participant",
                "content",
                "extension",
            ]
        ),
        json_values,
    ),
)
def test_never_raises_on_random_json(resource_type: str, body: dict[str, Any]) -> None:
    validate({"resourceType": resource_type, **body})
    normalise_resource({"resourceType": resource_type, **body}, [])


def test_fhirkit_and_r4b_agree_on_the_simulated_data(emitted: list[dict[str, Any]]) -> None:
    # A cross-check on the young validator: a second R4-like model sees the same (nothing).
    from fhir.resources.R4B import get_fhir_model_class

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for resource in emitted[::25]:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
