"""The resources each region serves: shape, dialect, size, duplicates and determinism."""

from __future__ import annotations

import base64
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from fhir_profiles.identifiers import parse_person_identifier
from simregions.catalog import ACT_CODE_SYSTEM, DIAGNOSES, ICD10SE_SYSTEM, MEDICINES
from simregions.clock import REFERENCE_DATE, REFERENCE_INSTANT
from simregions.data import (
    MAX_RESOURCES_PER_PERSON,
    MIN_RESOURCES_PER_PERSON,
    PATIENT_COMPARTMENT_TYPES,
    SERVED_TYPES,
    build_region_data,
    deliberate_duplicates,
)
from simregions.labs import (
    ANALYSES_BY_KEY,
    LAB_ANALYSES,
    LOINC_SYSTEM,
    NPU_SYSTEM,
    PANELS,
    SYD_LOCAL_LAB_SYSTEM,
)
from simregions.people import TEST_PERSON_PNR, people_in_region
from simregions.regions import DEFAULT_REGIONS, RegionSpec, get_region

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
REGION_IDS = [region.id for region in DEFAULT_REGIONS]


def resources(region_id: str, resource_type: str | None = None) -> list[dict[str, Any]]:
    data = build_region_data(get_region(region_id))
    return [r for r in data.resources if resource_type in (None, r["resourceType"])]


def references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value["reference"]
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def patient_of(resource: dict[str, Any]) -> str | None:
    if resource["resourceType"] == "Patient":
        return f"Patient/{resource['id']}"
    if "subject" in resource:
        return str(resource["subject"]["reference"])
    if "patient" in resource:  # AllergyIntolerance, Immunization
        return str(resource["patient"]["reference"])
    for participant in resource.get("participant", []):
        reference = participant.get("actor", {}).get("reference", "")
        if reference.startswith("Patient/"):
            return str(reference)
    return None


def loinc_check_digit_ok(code: str) -> bool:
    """LOINC's mod-10 check: odd positions from the right doubled as a number, and so on."""
    number, check = code.split("-")
    reversed_digits = number[::-1]
    digits = reversed_digits[1::2] + str(int(reversed_digits[0::2]) * 2)
    return (10 - sum(int(d) for d in digits) % 10) % 10 == int(check)


# -- catalogues ---------------------------------------------------------------------------


def test_lab_table_has_about_forty_consistently_coded_analyses() -> None:
    assert 38 <= len(LAB_ANALYSES) <= 50
    assert len({a.key for a in LAB_ANALYSES}) == len(LAB_ANALYSES)
    assert len({a.loinc for a in LAB_ANALYSES}) == len(LAB_ANALYSES)
    for analysis in LAB_ANALYSES:
        assert loinc_check_digit_ok(analysis.loinc), analysis.key
        if analysis.alt and analysis.alt.loinc:
            assert loinc_check_digit_ok(analysis.alt.loinc), analysis.key
        if analysis.npu is None:
            assert analysis.local_code, analysis.key
        else:
            assert re.fullmatch(r"NPU\d{5}", analysis.npu), analysis.key
        if analysis.low is not None and analysis.high is not None:
            assert analysis.low < analysis.high
    for panel in PANELS.values():
        assert all(key in ANALYSES_BY_KEY for key in panel)


def test_known_codes_are_the_real_ones() -> None:
    hb, glucose, crp = ANALYSES_BY_KEY["hb"], ANALYSES_BY_KEY["glukos"], ANALYSES_BY_KEY["crp"]
    assert (hb.loinc, hb.npu, hb.unit) == ("718-7", "NPU28309", "g/L")
    assert (glucose.loinc, glucose.npu) == ("14749-6", "NPU02192")
    assert (crp.loinc, crp.npu) == ("1988-5", "NPU19748")


def test_diagnoses_use_icd10_and_medicines_atc() -> None:
    for diagnosis in DIAGNOSES.values():
        assert re.fullmatch(r"[A-Z]\d{2}(\.\d{1,2})?", diagnosis.icd10), diagnosis.key
        assert all(key in MEDICINES for key in diagnosis.medicines)
        assert all(panel in PANELS for panel in diagnosis.panels)
    for medicine in MEDICINES.values():
        assert re.fullmatch(r"[A-Z]\d{2}[A-Z]{1,2}(\d{2})?", medicine.atc), medicine.key


# -- resources ----------------------------------------------------------------------------


@pytest.mark.parametrize("region_id", REGION_IDS)
def test_every_resource_has_an_id_meta_and_resolvable_references(region_id: str) -> None:
    everything = resources(region_id)
    keys = {f"{r['resourceType']}/{r['id']}" for r in everything}
    assert len(keys) == len(everything)
    assert {r["resourceType"] for r in everything} == set(SERVED_TYPES)
    for resource in everything:
        assert FHIR_ID.match(resource["id"])
        updated = datetime.fromisoformat(resource["meta"]["lastUpdated"])
        assert updated < REFERENCE_INSTANT
        for reference in references(resource):
            assert reference in keys, (resource["resourceType"], reference)
        if resource["resourceType"] in PATIENT_COMPARTMENT_TYPES:
            assert patient_of(resource) in keys


def test_local_patient_ids_differ_per_region_and_are_not_the_number() -> None:
    ids = [build_region_data(region).patient_id(TEST_PERSON_PNR) for region in DEFAULT_REGIONS]
    assert len(set(ids)) == 3
    for region in DEFAULT_REGIONS:
        for pnr, patient_id in build_region_data(region).patient_ids.items():
            assert pnr[2:] not in patient_id


@pytest.mark.parametrize("region_id", REGION_IDS)
def test_patients_carry_the_region_identifier_dialect(region_id: str) -> None:
    region = get_region(region_id)
    for patient in resources(region_id, "Patient"):
        (identifier,) = patient["identifier"]
        assert identifier["system"] in (
            region.identifier_system,
            region.coordination_identifier_system,
        )
        value = identifier["value"]
        if region.identifier_format == "canonical":
            assert re.fullmatch(r"\d{12}", value)
        else:
            assert re.fullmatch(r"\d{6}[-+]\d{4}", value)
        parse_person_identifier(value, today=REFERENCE_DATE)


def test_vast_writes_yymmdd_with_plus_for_centenarians() -> None:
    values = {p["identifier"][0]["value"] for p in resources("vast", "Patient")}
    assert "121212+1212" in values
    assert sum(1 for value in values if "+" in value) >= 2
    assert len(values) == len(people_in_region("vast"))


def test_canonical_regions_put_samordningsnummer_in_their_own_system() -> None:
    systems = Counter(p["identifier"][0]["system"] for p in resources("nord", "Patient"))
    assert systems["http://electronichealth.se/identifier/samordningsnummer"] >= 1


def test_protected_identity_is_labelled_and_has_no_address() -> None:
    labelled = [
        patient
        for region_id in REGION_IDS
        for patient in resources(region_id, "Patient")
        if patient["meta"].get("security")
    ]
    assert labelled
    for patient in labelled:
        assert patient["meta"]["security"][0]["code"] == "R"
        assert "address" not in patient
        assert "telecom" not in patient


def labs(region_id: str) -> list[dict[str, Any]]:
    """The region's laboratory results (its other Observations are vital signs, growth
    and assessments)."""
    return [
        o
        for o in resources(region_id, "Observation")
        if o["category"][0]["coding"][0]["code"] == "laboratory"
    ]


def lab_systems(region_id: str) -> Counter[str]:
    return Counter(o["code"]["coding"][0]["system"] for o in labs(region_id))


def test_nord_and_vast_code_labs_in_loinc_and_syd_in_npu() -> None:
    assert set(lab_systems("nord")) == {LOINC_SYSTEM}
    assert set(lab_systems("vast")) == {LOINC_SYSTEM}
    syd = lab_systems("syd")
    assert syd[NPU_SYSTEM] > 10 * syd[SYD_LOCAL_LAB_SYSTEM] > 0
    assert any(o["code"]["coding"][0]["code"] == "NPU28309" for o in labs("syd"))


def test_vast_reports_some_analyses_in_other_units() -> None:
    units = {(o["code"]["coding"][0]["code"], o["valueQuantity"]["code"]) for o in labs("vast")}
    assert ("2345-7", "mg/dL") in units  # glucose by mass
    assert ("718-7", "g/dL") in units  # haemoglobin in g/dL
    assert ("718-7", "g/L") not in units
    nord_units = {
        (o["code"]["coding"][0]["code"], o["valueQuantity"]["code"]) for o in labs("nord")
    }
    assert ("718-7", "g/L") in nord_units


def test_syd_sends_some_times_without_a_zone() -> None:
    zoned = re.compile(r"(Z|[+-]\d{2}:\d{2})$")
    for region_id, expect_missing in (("nord", False), ("syd", True)):
        times = [o["effectiveDateTime"] for o in resources(region_id, "Observation")]
        missing = [t for t in times if not zoned.search(t)]
        assert bool(missing) is expect_missing
    # Instants stay valid everywhere.
    assert all(zoned.search(a["start"]) for a in resources("syd", "Appointment"))


def test_observations_are_laboratory_results_with_ranges_and_series() -> None:
    observations = labs("nord")
    tolvan = build_region_data(get_region("nord")).patient_id(TEST_PERSON_PNR)
    series = Counter(
        o["code"]["coding"][0]["code"]
        for o in observations
        if o["subject"]["reference"] == f"Patient/{tolvan}"
    )
    assert max(series.values()) >= 3
    for observation in observations:
        assert observation["category"][0]["coding"][0]["code"] == "laboratory"
        assert observation["valueQuantity"]["system"] == "http://unitsofmeasure.org"
        assert observation["referenceRange"][0].keys() & {"low", "high"}
        assert observation["performer"][0]["reference"].startswith("Organization/")


def test_encounters_use_the_r4_single_coding_class() -> None:
    for encounter in resources("vast", "Encounter"):
        assert isinstance(encounter["class"], dict)
        assert encounter["class"]["system"] == ACT_CODE_SYSTEM
        assert encounter["serviceProvider"]["reference"].startswith("Organization/")


def test_clinical_content_is_swedish_and_coded() -> None:
    notes = resources("syd", "DocumentReference")
    text = base64.b64decode(notes[0]["content"][0]["attachment"]["data"]).decode("utf-8")
    assert "Bedömning:" in text
    assert all(
        c["code"]["coding"][0]["system"] == ICD10SE_SYSTEM for c in resources("syd", "Condition")
    )
    requests = resources("nord", "MedicationRequest")
    assert all(
        r["medicationCodeableConcept"]["coding"][0]["system"] == "http://www.whocc.no/atc"
        for r in requests
    )
    statuses = Counter(r["status"] for r in requests)
    assert statuses["active"]
    assert statuses["completed"]


def test_appointments_are_past_and_future() -> None:
    starts = Counter()
    for appointment in resources("nord", "Appointment"):
        future = datetime.fromisoformat(appointment["start"]) > REFERENCE_INSTANT
        starts[(future, appointment["status"])] += 1
    assert starts[(True, "booked")]
    assert starts[(False, "fulfilled")]
    assert starts[(False, "cancelled")] + starts[(True, "cancelled")] > 0
    assert not starts[(True, "fulfilled")]


def test_the_test_person_has_allergies_and_a_life_of_vaccinations() -> None:
    allergies, immunizations = [], []
    for region in DEFAULT_REGIONS:
        tolvan = f"Patient/{build_region_data(region).patient_id(TEST_PERSON_PNR)}"
        here = [
            r
            for r in resources(region.id, "AllergyIntolerance")
            + resources(region.id, "Immunization")
            if r["patient"]["reference"] == tolvan
        ]
        assert {"AllergyIntolerance", "Immunization"} == {r["resourceType"] for r in here}
        allergies += [r for r in here if r["resourceType"] == "AllergyIntolerance"]
        immunizations += [r for r in here if r["resourceType"] == "Immunization"]
    assert {a["criticality"] for a in allergies} == {"high", "low", "unable-to-assess"}
    assert {a["type"] for a in allergies} == {"allergy", "intolerance"}
    assert all(a["code"]["coding"][0]["system"] == "http://snomed.info/sct" for a in allergies)
    years = sorted(int(i["occurrenceDateTime"][:4]) for i in immunizations)
    assert years[0] < 1920
    assert years[-1] >= 2025
    vaccines = {i["vaccineCode"]["coding"][0]["code"] for i in immunizations}
    assert {"J07BB02", "J07BN01"} <= vaccines  # influenza and COVID-19
    assert all(i["status"] == "completed" for i in immunizations)


def test_the_test_person_has_procedures_care_plans_a_care_team_and_alerts() -> None:
    kva = "urn:oid:1.2.752.116.1.3.2.1.4"
    found: dict[str, list[dict[str, Any]]] = {}
    for region in DEFAULT_REGIONS:
        tolvan = f"Patient/{build_region_data(region).patient_id(TEST_PERSON_PNR)}"
        for resource_type in ("Procedure", "CarePlan", "CareTeam", "Flag"):
            here = resources(region.id, resource_type)
            found.setdefault(resource_type, []).extend(
                r for r in here if r["subject"]["reference"] == tolvan
            )
    procedures = {r["code"]["coding"][0]["code"] for r in found["Procedure"]}
    assert procedures == {"DF027", "JEA00"}  # KVÅ: cardioversion, appendectomy
    assert all(r["code"]["coding"][0]["system"] == kva for r in found["Procedure"])
    assert {p["title"] for p in found["CarePlan"]} == {
        "Samordnad individuell plan (SIP)",
        "Vårdplan hjärtsvikt",
        "Vårdplan typ 2-diabetes",
    }
    assert all(p["activity"] and p["careTeam"] for p in found["CarePlan"])
    teams = {f"CareTeam/{t['id']}": t for t in found["CareTeam"]}
    assert len(teams) == 3  # each plan's
    for plan in found["CarePlan"]:
        assert plan["careTeam"][0]["reference"] in teams
    for team in teams.values():
        assert all(p["role"] for p in team["participant"])
        hsa_ids = [p["member"]["identifier"]["value"] for p in team["participant"][:2]]
        assert all(h.startswith("SE232100900") for h in hsa_ids)
    assert sorted(f["status"] for f in found["Flag"]) == ["active", "active", "inactive"]
    ended = next(f for f in found["Flag"] if f["status"] == "inactive")
    assert ended["period"]["end"] > ended["period"]["start"]


def test_children_have_the_child_health_services_plan_and_team() -> None:
    seen = 0
    for region_id in REGION_IDS:
        patients = {p["id"]: p for p in resources(region_id, "Patient")}
        by_child: dict[str, list[str]] = {}
        for resource in resources(region_id):
            if resource["resourceType"] in ("Procedure", "CarePlan", "CareTeam", "Flag"):
                patient = patients[resource["subject"]["reference"].removeprefix("Patient/")]
                if patient["birthDate"] >= "2014":
                    by_child.setdefault(patient["birthDate"], []).append(resource["resourceType"])
        for born, types in by_child.items():
            seen += 1
            assert types.count("CarePlan") == types.count("CareTeam") == 1, born
            assert ("Procedure" in types) == (born < "2017-05"), born  # appendectomy at nine
            assert ("Flag" in types) == (born < "2020"), born  # the egg hypersensitivity
    assert seen >= 4


def test_children_have_the_childhood_programme_so_far_as_their_age_reaches() -> None:
    for region_id in REGION_IDS:
        patients = {p["id"]: p for p in resources(region_id, "Patient")}
        given: dict[str, list[str]] = {}
        for immunization in resources(region_id, "Immunization"):
            patient = patients[immunization["patient"]["reference"].removeprefix("Patient/")]
            if patient["birthDate"] >= "2014":
                code = immunization["vaccineCode"]["coding"][0]["code"]
                given.setdefault(patient["birthDate"], []).append(code)
        assert given, region_id
        for born, codes in given.items():
            assert codes.count("J07CA09") == 3, born  # DTaP-IPV-Hib-HepB at 3, 5, 12 months
            assert ("J07CA02" in codes) == (born < "2021-09"), born  # the booster at 5 years
    children = [p for r in REGION_IDS for p in resources(r, "Patient") if p["birthDate"] >= "2014"]
    assert len(children) >= 4


def per_patient(region_id: str) -> Counter[str]:
    return Counter(patient_of(r) for r in resources(region_id) if patient_of(r))


def is_measurement(resource: dict[str, Any]) -> bool:
    return resource["resourceType"] == "Observation" and any(
        c["coding"][0]["code"] == "vital-signs" for c in resource["category"]
    )


def test_the_test_person_is_rich_and_everyone_else_modest() -> None:
    total = 0
    for region in DEFAULT_REGIONS:
        counts = per_patient(region.id)
        tolvan = f"Patient/{build_region_data(region).patient_id(TEST_PERSON_PNR)}"
        total += counts.pop(tolvan)
        # Besides a child's growth curve.
        growth = Counter(patient_of(r) for r in resources(region.id) if is_measurement(r))
        counts.subtract({p: n for p, n in growth.items() if p != tolvan})
        assert min(counts.values()) >= MIN_RESOURCES_PER_PERSON
        assert max(counts.values()) <= MAX_RESOURCES_PER_PERSON
    assert 900 <= total <= 1400  # every category of the record, over a long life


def strip_local(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without what legitimately differs between regions: ids and references."""
    local = ("id", "meta", "subject", "patient", "authorizingPrescription")
    kept = {k: v for k, v in resource.items() if k not in local}
    if "performer" in kept:
        kept["performer"] = [
            {k: v for k, v in p.items() if k != "reference"} for p in kept["performer"]
        ]
    return kept


def test_deliberate_duplicates_are_identical_but_for_local_ids() -> None:
    (
        crp,
        prescription,
        hb,
        allergy,
        vaccination,
        procedure,
        flag,
        hb_report,
        crp_report,
        pressure,
        dispense,
    ) = deliberate_duplicates()
    by_id = {(region_id, r["id"]): r for region_id in REGION_IDS for r in resources(region_id)}
    for duplicate in (crp, prescription, allergy, vaccination, procedure, flag, pressure, dispense):
        first, second = (by_id[key] for key in duplicate.ids)
        assert [region for region, _ in duplicate.ids] == ["nord", "vast"]
        assert first["resourceType"] == second["resourceType"] == duplicate.resource_type
        assert strip_local(first) == strip_local(second)
        assert first["id"] != second["id"]
    nord_hb, syd_hb = (by_id[key] for key in hb.ids)
    assert nord_hb["code"]["coding"][0]["code"] == "718-7"
    assert syd_hb["code"]["coding"][0]["code"] == "NPU28309"
    for field in ("effectiveDateTime", "valueQuantity", "referenceRange", "issued"):
        assert nord_hb[field] == syd_hb[field]
    assert nord_hb["performer"][0]["identifier"] == syd_hb["performer"][0]["identifier"]
    # The dispensation names each region's own copy of the one prescription.
    nord_dispense, vast_dispense = (by_id[key] for key in dispense.ids)
    nord_rx, vast_rx = (by_id[key] for key in prescription.ids)
    assert nord_dispense["authorizingPrescription"] == [
        {"reference": f"MedicationRequest/{nord_rx['id']}"}
    ]
    assert vast_dispense["authorizingPrescription"] == [
        {"reference": f"MedicationRequest/{vast_rx['id']}"}
    ]
    for report, result in ((hb_report, hb), (crp_report, crp)):
        first, second = (by_id[key] for key in report.ids)
        assert [region for region, _ in report.ids] == [region for region, _ in result.ids]
        assert first["resourceType"] == second["resourceType"] == "DiagnosticReport"
        assert [r["reference"] for r in first["result"]] == [f"Observation/{result.ids[0][1]}"]
        assert [r["reference"] for r in second["result"]] == [f"Observation/{result.ids[1][1]}"]
        for field in ("code", "effectiveDateTime", "issued", "status", "category"):
            assert first[field] == second[field], field
        assert first["performer"][0]["identifier"] == second["performer"][0]["identifier"]


def test_the_test_person_has_lab_reports_an_answered_referral_and_an_open_one() -> None:
    reports: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    for region in DEFAULT_REGIONS:
        tolvan = f"Patient/{build_region_data(region).patient_id(TEST_PERSON_PNR)}"
        here = {r["id"]: r for r in resources(region.id, "Observation")}
        for report in resources(region.id, "DiagnosticReport"):
            if report["subject"]["reference"] != tolvan:
                continue
            for result in report.get("result", []):  # each names a lab result of the region
                observation = here[result["reference"].removeprefix("Observation/")]
                assert observation["subject"]["reference"] == tolvan
                assert observation["effectiveDateTime"][:16] == report["effectiveDateTime"][:16]
            reports.append(report)
        requests += [
            r for r in resources(region.id, "ServiceRequest") if r["subject"]["reference"] == tolvan
        ]
    texts = {r["code"]["text"] for r in reports}
    assert {"Blodstatus", "Lipidstatus", "Slätröntgen av lungor"} <= texts
    (xray,) = [r for r in reports if "RAD" in str(r.get("category"))]
    assert base64.b64decode(xray["presentedForm"][0]["data"]).decode().startswith("Slätröntgen")
    by_id = {r["id"]: r for r in requests}
    answers = [r for r in reports if "basedOn" in r]
    assert xray in answers
    assert len(answers) == 2
    answered = [
        by_id[r["basedOn"][0]["reference"].removeprefix("ServiceRequest/")] for r in answers
    ]
    assert all(r["conclusion"] for r in answers)
    assert all(r["status"] == "completed" for r in answered)
    assert [r["status"] for r in requests if r not in answered] == ["active"], "not answered"


def test_every_child_has_a_referral_and_its_answer() -> None:
    for region_id in REGION_IDS:
        patients = {p["id"]: p for p in resources(region_id, "Patient")}
        children = {i for i, p in patients.items() if p["birthDate"] >= "2014"}
        requests = {
            r["id"]: r["subject"]["reference"].removeprefix("Patient/")
            for r in resources(region_id, "ServiceRequest")
        }
        answered = {
            r["basedOn"][0]["reference"].removeprefix("ServiceRequest/"): r
            for r in resources(region_id, "DiagnosticReport")
            if "basedOn" in r
        }
        asked = {child for request, child in requests.items() if child in children}
        assert asked, region_id
        for request, child in requests.items():
            if child in children:
                assert answered[request]["subject"]["reference"] == f"Patient/{child}"


@pytest.mark.parametrize("region", DEFAULT_REGIONS, ids=REGION_IDS)
def test_building_twice_gives_the_same_data(region: RegionSpec) -> None:
    fresh = build_region_data.__wrapped__(region)  # bypass the cache
    cached = build_region_data(region)
    assert fresh.resources == cached.resources
    assert fresh.patient_ids == cached.patient_ids
