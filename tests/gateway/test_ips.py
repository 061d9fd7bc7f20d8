"""The International Patient Summary (gateway/answer/summary/): content rules, and validation
against HL7's official IPS 2.0.0 package, offline.

Validation setup: the package is vendored (``tests/ips/hl7.fhir.uv.ips-2.0.0.tgz``, 708 KB,
checked against the npm registry's SHA-512 before use) and ``pyfhircheck`` 0.2.0 reads it
as a local package: no network at test time. The summary is built from the real record
of the test person (the three simulated regions through the gateway's ``$everything``).

``pyfhircheck`` 0.2.0 has defects that make it report errors on HL7's *own* IPS examples.
They are listed in ``VALIDATOR_DEFECTS``; ``test_validator_defects_show_on_the_official_example``
shows each one on the package's example Bundle, so the list cannot silently grow stale,
and the rules those defects stop it from checking (the section slices, ips-comp-1, the
Bundle entry slices) are asserted here directly. ``fhirkit`` (an R4 4.0.1 structural
validator) checks the same document and must find nothing: it does know the ``text``
elements that ``pyfhircheck`` calls unknown.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fhirkit
import pytest

from fhir_profiles.ips import IPS_PROFILES
from gateway.answer.summary import build_summary
from tests.gateway.conftest import FHIR_BASE, Gateway

ROOT = Path(__file__).resolve().parents[2]
IPS_PACKAGE = ROOT / "tests" / "ips" / "hl7.fhir.uv.ips-2.0.0.tgz"
#: ``npm view hl7.fhir.uv.ips@2.0.0 dist.integrity``
IPS_INTEGRITY = (
    "sha512-4PWToJ9b1FgXsm9DIvHiU6HO9Z5m75jxk0e0MXOmhFlf2m2slk/d6RoiSYIChKJlv"
    "mtJ7GbRftt7PphlwmZcbQ=="
)
#: Our one extension that stays in the document, defined in our profiles folder.
ORIGINAL_QUANTITY_SD = ROOT / "fhir_profiles" / "profiles" / "original-quantity.json"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LOINC = "http://loinc.org"
REQUIRED_SECTIONS = {"10160-0", "48765-2", "11450-4"}
VITAL_SIGNS = "8716-3"

#: pyfhircheck 0.2.0 errors that are its own defects, as (issue code, path pattern):
#: - it drops every backbone child named ``text`` (it treats it as a resource's narrative),
#:   so Composition.section.text, Dosage.text (of a MedicationRequest, MedicationStatement or
#:   MedicationDispense) and Observation.referenceRange.text, all R4 elements, are "unknown";
#: - its ``type``+``profile`` discriminator never matches a Bundle entry, and its ``value``
#:   discriminator never matches a Composition section, so the required slices look empty.
VALIDATOR_DEFECTS: tuple[tuple[str, str], ...] = (
    (
        "element.unknown",
        r"(Composition\.section|MedicationRequest\.dosageInstruction|MedicationStatement\.dosage"
        r"|MedicationDispense\.dosageInstruction|Observation\.referenceRange)\[\d+\]\.text",
    ),
    ("profile.slice.cardinality.min", r"Bundle\.entry:(composition|patient)"),
    (
        "profile.slice.cardinality.min",
        r"Composition\.section:section(Allergies|Medications|Problems)",
    ),
)


def _defect(issue: Any) -> tuple[str, str] | None:
    for code, pattern in VALIDATOR_DEFECTS:
        if issue.code == code and re.fullmatch(pattern, issue.path or ""):
            return code, pattern
    return None


def _describe(issues: list[Any]) -> list[str]:
    return sorted({f"{i.severity.value} {i.code} {i.path}: {i.message}" for i in issues})


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ips_validator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """pyfhircheck over the vendored IPS package only: nothing is fetched."""
    from pyfhircheck import Validator
    from pyfhircheck.config import ValidatorConfig

    digest = hashlib.sha512(IPS_PACKAGE.read_bytes()).digest()
    assert "sha512-" + base64.b64encode(digest).decode() == IPS_INTEGRITY, "IPS package altered"
    scratch = tmp_path_factory.mktemp("pyfhircheck")
    config = ValidatorConfig.load_dict(
        {
            "fhirVersion": "4.0.1",
            "localPackagePaths": [str(IPS_PACKAGE), str(ORIGINAL_QUANTITY_SD)],
            "terminology": {"mode": "local", "cacheDir": str(scratch / "terminology")},
            "packageCacheDir": str(scratch / "packages"),
            "evidenceOutputDir": str(scratch / "evidence"),
        }
    )
    return Validator(config)


@pytest.fixture(scope="session")
def official_example() -> dict[str, Any]:
    """HL7's all-sections IPS example, from the package, with its profiles declared."""
    import tarfile

    with tarfile.open(IPS_PACKAGE) as archive:
        member = archive.extractfile("package/example/Bundle-bundle-ips-all-sections.json")
        assert member is not None
        bundle: dict[str, Any] = json.loads(member.read())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        profile = IPS_PROFILES.get(resource["resourceType"])
        if profile and resource["resourceType"] in ("Composition", "Patient", "Condition"):
            resource.setdefault("meta", {})["profile"] = [profile]
    return bundle


async def _record(gateway: Gateway) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
    )
    assert response.status_code == 200, response.text
    matches = [e["resource"] for e in response.json()["entry"] if e["search"]["mode"] == "match"]
    patient = next(r for r in matches if r["resourceType"] == "Patient")
    return patient, [r for r in matches if r["resourceType"] != "Patient"]


# -- small hand-made inputs ------------------------------------------------------------------------

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [
        {"system": "http://electronichealth.se/identifier/personnummer", "value": "191212121212"}
    ],
    "name": [{"family": "Tolvansson", "given": ["Tolvan"], "text": "Tolvan Tolvansson"}],
    "gender": "male",
    "birthDate": "1912-12-12",
}
SUBJECT = {"reference": "Patient/p1"}
LAB = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory",
        }
    ]
}


def lab(rid: str, loinc: str, when: str, value: float, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [LAB],
        "code": {"coding": [{"system": LOINC, "code": loinc}], "text": f"analysis {loinc}"},
        "subject": SUBJECT,
        "effectiveDateTime": when,
        "performer": [{"reference": "Organization/lab", "display": "Klinisk kemi"}],
        "valueQuantity": {
            "value": value,
            "unit": "g/L",
            "system": "http://unitsofmeasure.org",
            "code": "g/L",
        },
        **extra,
    }


def medication(rid: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "C09AA02"}],
            "text": f"Enalapril {rid}",
        },
        "subject": SUBJECT,
        "authoredOn": "2026-01-01T10:00:00+01:00",
        "requester": {"reference": "Practitioner/doc", "display": "Dr Doktor"},
        "dosageInstruction": [{"text": "1 tablett dagligen"}],
        **extra,
    }


def condition(rid: str, clinical: str, code: str = "I10", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": clinical,
                }
            ]
        },
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-se", "code": code}],
            "text": f"Diagnosis {code}",
        },
        "subject": SUBJECT,
        "onsetDateTime": "2024-01-19T12:00:00+01:00",
        "recorder": {"reference": "Practitioner/doc"},
        **extra,
    }


def small_record() -> list[dict[str, Any]]:
    return [
        lab("hb-old", "718-7", "2025-01-01T08:00:00+01:00", 130),
        lab("hb-new", "718-7", "2026-02-01T08:00:00+01:00", 140),
        lab("crp", "1988-5", "2025-06-01T08:00:00+02:00", 5),
        lab("no-time", "2951-2", "", 140),
        medication("current", "active"),
        medication("old", "completed"),
        medication("never", "active", doNotPerform=True),
        condition("htn", "active"),
        condition("uti", "resolved", "N39.0", abatementDateTime="2024-02-01"),
        condition(
            "wrong",
            "active",
            "J45",
            verificationStatus={
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "code": "refuted",
                    }
                ]
            },
        ),
    ]


def sections(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    composition = bundle["entry"][0]["resource"]
    return {s["code"]["coding"][0]["code"]: s for s in composition["section"]}


def section_ids(bundle: dict[str, Any], code: str) -> list[str]:
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    return [by_url[ref["reference"]]["id"] for ref in sections(bundle)[code].get("entry", [])]


def references(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        if "reference" in value or ("display" in value and "identifier" in value):
            yield value
        for item in value.values():
            yield from references(item)


# -- content rules ---------------------------------------------------------------------------------


def test_document_shape_and_required_sections() -> None:
    bundle = build_summary(PATIENT, small_record(), base_url=FHIR_BASE, now=NOW)
    assert bundle["type"] == "document"
    assert bundle["timestamp"] == "2026-11-22T12:00:00Z"
    assert bundle["identifier"]["value"].startswith("urn:uuid:")
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["type"]["coding"][0] == {"system": LOINC, "code": "60591-5"}
    assert composition["status"] == "final"
    assert composition["date"] == bundle["timestamp"]
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    assert urls[composition["subject"]["reference"]]["id"] == "p1"
    author = urls[composition["author"][0]["reference"]]
    assert author["resourceType"] == "Device"
    assert author["deviceName"][0]["name"] == "Samlad"
    assert set(sections(bundle)) >= REQUIRED_SECTIONS
    for section in composition["section"]:
        assert section["title"]
        assert section["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
        assert ("entry" in section) != ("emptyReason" in section)  # ips-comp-1
    allergies = sections(bundle)["48765-2"]
    assert allergies["emptyReason"]["coding"][0]["code"] == "unavailable"
    assert "No allergies or intolerances were found" in allergies["text"]["div"]
    assert len({e["fullUrl"] for e in bundle["entry"]}) == len(bundle["entry"])
    assert all(e["fullUrl"].startswith("urn:uuid:") for e in bundle["entry"])


def test_selection_current_medication_problems_and_latest_results() -> None:
    bundle = build_summary(PATIENT, small_record(), base_url=FHIR_BASE, now=NOW)
    assert section_ids(bundle, "10160-0") == ["current"]
    assert "1 earlier prescription" in sections(bundle)["10160-0"]["text"]["div"]
    assert section_ids(bundle, "11450-4") == ["htn"]
    assert section_ids(bundle, "11348-0") == ["uti"]  # resolved: history, not dropped
    assert section_ids(bundle, "30954-2") == ["hb-new", "crp"]  # newest first
    ids = {e["resource"]["id"] for e in bundle["entry"]}
    assert not ids & {"never", "wrong", "hb-old", "no-time", "old"}
    two = build_summary(
        PATIENT, small_record(), base_url=FHIR_BASE, now=NOW, results_per_analysis=2
    )
    assert section_ids(two, "30954-2") == ["hb-new", "crp", "hb-old"]


def test_allergies_and_immunizations_are_listed_but_not_refuted_or_not_given_ones() -> None:
    verification = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
    atc = "http://www.whocc.no/atc"

    def allergy(rid: str, recorded: str, verified: str = "confirmed") -> dict[str, Any]:
        return {
            "resourceType": "AllergyIntolerance",
            "id": rid,
            "verificationStatus": {"coding": [{"system": verification, "code": verified}]},
            "code": {"text": f"Substance {rid}"},
            "patient": SUBJECT,
            "criticality": "high",
            "recordedDate": recorded,
            "reaction": [{"manifestation": [{"text": "Urticaria"}], "severity": "moderate"}],
        }

    def shot(rid: str, when: str, status: str = "completed") -> dict[str, Any]:
        return {
            "resourceType": "Immunization",
            "id": rid,
            "status": status,
            "vaccineCode": {"coding": [{"system": atc, "code": "J07BB02"}], "text": "Influenza"},
            "patient": SUBJECT,
            "occurrenceDateTime": when,
            "performer": [{"actor": {"reference": "Organization/vc", "display": "Vårdcentral"}}],
        }

    record = [
        *small_record(),
        allergy("old", "2019-03-12"),
        allergy("new", "2024-01-02"),
        allergy("refuted", "2025-01-01", "refuted"),
        shot("flu-2023", "2023-10-16"),
        shot("flu-2024", "2024-10-21"),
        shot("missed", "2025-10-20", "not-done"),
    ]
    bundle = build_summary(PATIENT, record, base_url=FHIR_BASE, now=NOW)
    assert section_ids(bundle, "48765-2") == ["new", "old"]
    assert "emptyReason" not in sections(bundle)["48765-2"]
    assert "Urticaria (moderate)" in sections(bundle)["48765-2"]["text"]["div"]
    assert section_ids(bundle, "11369-6") == ["flu-2024", "flu-2023"]
    assert "Vårdcentral" in sections(bundle)["11369-6"]["text"]["div"]
    by_id = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
    assert by_id["flu-2024"]["meta"]["profile"] == [IPS_PROFILES["Immunization"]]
    assert by_id["new"]["meta"]["profile"] == [IPS_PROFILES["AllergyIntolerance"]]
    assert by_id["flu-2024"]["performer"] == [{"actor": {"display": "Vårdcentral"}}]
    assert not {"refuted", "missed"} & set(by_id)
    assert fhirkit.validate(bundle) == []


def test_procedures_current_care_plans_and_active_alerts_are_listed() -> None:
    kva = "urn:oid:1.2.752.116.1.3.2.1.4"
    hsa = "urn:oid:1.2.752.129.2.1.4.1"

    def procedure(rid: str, status: str = "completed", **extra: Any) -> dict[str, Any]:
        return {
            "resourceType": "Procedure",
            "id": rid,
            "status": status,
            "code": {"coding": [{"system": kva, "code": "JEA00"}], "text": f"Ingrepp {rid}"},
            "subject": SUBJECT,
            "performer": [
                {
                    "actor": {
                        "reference": "Organization/unit",
                        "identifier": {"system": hsa, "value": "SE2321009002-HJRT"},
                        "display": "Hjärtmottagningen",
                    }
                }
            ],
            **extra,
        }

    def plan(rid: str, status: str, start: str) -> dict[str, Any]:
        return {
            "resourceType": "CarePlan",
            "id": rid,
            "status": status,
            "intent": "plan",
            "title": f"Vårdplan {rid}",
            "subject": SUBJECT,
            "period": {"start": start},
            "careTeam": [{"reference": "CareTeam/not-in-the-document"}],
            "addresses": [{"reference": "Condition/htn"}],
            "activity": [{"detail": {"status": "scheduled", "description": "Återbesök"}}],
        }

    def flag(rid: str, status: str, start: str) -> dict[str, Any]:
        return {
            "resourceType": "Flag",
            "id": rid,
            "status": status,
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                            "code": "drug",
                        }
                    ],
                    "text": "Behandling",
                }
            ],
            "code": {"text": f"Varning {rid}"},
            "subject": SUBJECT,
            "period": {"start": start},
            "author": {"display": "Medicinmottagningen"},
        }

    record = [
        *small_record(),
        procedure("old", performedDateTime="1961-08-14"),
        procedure("new", performedPeriod={"start": "2025-11-04T09:30:00+01:00"}),
        procedure("undated"),
        procedure("planned", "preparation", performedDateTime="2027-01-01"),
        procedure("wrong", "entered-in-error", performedDateTime="2025-01-01"),
        plan("sip", "active", "2026-03-02"),
        plan("diabetes", "on-hold", "2024-01-10"),
        plan("finished", "completed", "2020-01-01"),
        flag("anticoagulant", "active", "2026-06-02"),
        flag("mrsa", "inactive", "2018-02-01"),
    ]
    bundle = build_summary(PATIENT, record, base_url=FHIR_BASE, now=NOW)
    assert section_ids(bundle, "47519-4") == ["new", "old", "undated"]
    assert section_ids(bundle, "18776-5") == ["sip", "diabetes"]
    assert "1 earlier care plan(s)" in sections(bundle)["18776-5"]["text"]["div"]
    assert section_ids(bundle, "104605-1") == ["anticoagulant"]
    assert "Hjärtmottagningen" in sections(bundle)["47519-4"]["text"]["div"]
    by_id = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
    assert by_id["new"]["meta"]["profile"] == [IPS_PROFILES["Procedure"]]
    assert by_id["anticoagulant"]["meta"]["profile"] == [IPS_PROFILES["Flag"]]
    assert "meta" not in by_id["sip"] or "profile" not in by_id["sip"]["meta"]
    assert by_id["undated"]["_performedDateTime"]["extension"][0]["valueCode"] == "unknown"
    assert by_id["new"]["performer"] == [
        {
            "actor": {
                "identifier": {"system": hsa, "value": "SE2321009002-HJRT"},
                "display": "Hjärtmottagningen",
            }
        }
    ]
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    assert "careTeam" not in by_id["sip"], "a reference to nothing in the document goes"
    assert urls[by_id["sip"]["addresses"][0]["reference"]]["id"] == "htn"
    assert not {"planned", "wrong", "finished", "mrsa"} & set(by_id)


def vital(rid: str, loinc: str, when: str, category: str = "vital-signs", **value: Any) -> Any:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": category,
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": loinc}], "text": f"vital {loinc}"},
        "subject": SUBJECT,
        "effectiveDateTime": when,
        **value,
    }


def test_vital_signs_lists_the_latest_reading_of_each_and_results_keep_the_labs() -> None:
    kg = {"value": 80, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    pressure = [
        {"code": {"coding": [{"system": LOINC, "code": code}], "text": text},
         "valueQuantity": {"value": value, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                           "code": "mm[Hg]"}}
        for code, text, value in (("8480-6", "Systoliskt", 142), ("8462-4", "Diastoliskt", 88))
    ]  # fmt: skip
    record = [
        *small_record(),
        vital("weight-old", "29463-7", "2024-01-01T10:00:00+01:00", valueQuantity=kg),
        vital("weight-new", "29463-7", "2026-01-01T10:00:00+01:00", valueQuantity=kg),
        vital("bp", "85354-9", "2025-06-01T10:00:00+02:00", component=pressure),
        vital("no-value", "8867-4", "2026-02-01T10:00:00+01:00"),
        vital("adl", "96761-2", "2026-03-01T10:00:00+01:00", "survey", valueInteger=85),
    ]
    bundle = build_summary(PATIENT, record, base_url=FHIR_BASE, now=NOW)
    assert section_ids(bundle, VITAL_SIGNS) == ["weight-new", "bp"]
    assert "hb-new" in section_ids(bundle, "30954-2")
    assert not {"weight-new", "bp", "adl"} & set(section_ids(bundle, "30954-2"))
    div = sections(bundle)[VITAL_SIGNS]["text"]["div"]
    assert "Systoliskt 142 mmHg, Diastoliskt 88 mmHg" in div
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    (bp,) = [urls[r["reference"]] for r in sections(bundle)[VITAL_SIGNS]["entry"][1:]]
    assert bp["meta"]["profile"] == [IPS_PROFILES["vital-signs"]]
    assert "performer" not in bp  # only the laboratory profile asks for one
    # Without any vital sign the optional section is left out.
    assert VITAL_SIGNS not in sections(
        build_summary(PATIENT, small_record(), base_url=FHIR_BASE, now=NOW)
    )


def dispensed(rid: str, prescription: str, when: str, status: str = "completed") -> Any:
    return {
        "resourceType": "MedicationDispense",
        "id": rid,
        "status": status,
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "C09AA02"}],
            "text": "Enalapril",
        },
        "subject": SUBJECT,
        "performer": [{"actor": {"display": "Apoteket Norrhamn"}}],
        "authorizingPrescription": [{"reference": f"MedicationRequest/{prescription}"}],
        "quantity": {"value": 100, "unit": "tablett", "system": "http://unitsofmeasure.org",
                     "code": "{tablet}"},
        "whenHandedOver": when,
    }  # fmt: skip


def test_medication_summary_lists_the_latest_dispensing_of_each_current_prescription() -> None:
    record = [
        *small_record(),
        dispensed("first", "current", "2026-01-02T14:12:00+01:00"),
        dispensed("latest", "current", "2026-04-02T14:12:00+02:00"),
        dispensed("returned", "current", "2026-05-02T14:12:00+02:00", status="cancelled"),
        dispensed("of-old", "old", "2026-06-02T14:12:00+02:00"),
    ]
    bundle = build_summary(PATIENT, record, base_url=FHIR_BASE, now=NOW)
    assert section_ids(bundle, "10160-0") == ["current", "latest"]
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    entries = sections(bundle)["10160-0"]["entry"]
    latest = urls[entries[1]["reference"]]
    assert latest["authorizingPrescription"] == [{"reference": entries[0]["reference"]}]
    assert "Apoteket Norrhamn" in sections(bundle)["10160-0"]["text"]["div"]
    assert fhirkit.validate(bundle) == []


def test_empty_record_has_the_required_sections_with_empty_reasons() -> None:
    bundle = build_summary(PATIENT, [], base_url=FHIR_BASE, now=NOW)
    found = sections(bundle)
    assert set(found) == REQUIRED_SECTIONS
    for section in found.values():
        assert section["emptyReason"]["coding"][0]["code"] == "unavailable"
        assert "entry" not in section
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == [
        "Composition",
        "Patient",
        "Device",
    ]


def test_references_resolve_inside_the_document_or_become_logical() -> None:
    bundle = build_summary(PATIENT, small_record(), base_url=FHIR_BASE, now=NOW)
    urls = {e["fullUrl"] for e in bundle["entry"]}
    for ref in references(bundle):
        if "reference" in ref:
            assert ref["reference"] in urls, ref
    observation = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "hb-new")
    assert observation["subject"]["reference"] == bundle["entry"][1]["fullUrl"]
    assert observation["performer"] == [{"display": "Klinisk kemi"}]
    problem = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "htn")
    assert "recorder" not in problem  # nothing left to say about an unknown recorder
    med = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "current")
    assert med["requester"] == {"display": "Dr Doktor"}
    assert med["meta"]["profile"] == [IPS_PROFILES["MedicationRequest"]]


def test_source_strings_are_escaped_and_source_narratives_not_copied() -> None:
    hostile = condition("x", "active", "I10")
    hostile["code"]["text"] = '<script>alert("x")</script> & <b onmouseover=1>'
    hostile["text"] = {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><a href="javascript:x">hi</a></div>',
    }
    lab_result = lab("l", "718-7", "2026-01-01T08:00:00Z", 1)
    lab_result["code"]["text"] = "Hb\x00\x07 <i>"
    bundle = build_summary(PATIENT, [hostile, lab_result], base_url=FHIR_BASE, now=NOW)
    composition = bundle["entry"][0]["resource"]
    divs = [s["text"]["div"] for s in composition["section"]]
    divs += [e["resource"]["text"]["div"] for e in bundle["entry"]]
    narrative = "".join(divs)
    assert "<script" not in narrative
    assert "javascript:" not in narrative
    assert "<b onmouseover" not in narrative
    assert "<i>" not in narrative
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b onmouseover=1&gt;" in (
        narrative
    )
    assert "\x00" not in narrative
    assert "\x07" not in narrative
    assert "Hb &lt;i&gt;" in narrative
    for entry in bundle["entry"]:
        assert entry["resource"]["text"]["status"] == "generated"


def test_deterministic_and_pure() -> None:
    record = small_record()
    before = copy.deepcopy(record)
    one = build_summary(PATIENT, record, base_url=FHIR_BASE, now=NOW)
    two = build_summary(
        copy.deepcopy(PATIENT),
        copy.deepcopy(record),
        base_url=FHIR_BASE,
        now=NOW.astimezone(timezone(timedelta(hours=1))),
    )
    assert json.dumps(one) == json.dumps(two)
    assert record == before
    later = build_summary(PATIENT, record, base_url=FHIR_BASE, now=NOW + timedelta(seconds=1))
    assert later["identifier"] != one["identifier"]
    assert later["entry"][1]["fullUrl"] == one["entry"][1]["fullUrl"]  # same Patient
    with pytest.raises(ValueError, match="timezone"):
        build_summary(PATIENT, record, base_url=FHIR_BASE, now=datetime(2026, 1, 1))


def test_restricted_identity_and_incomplete_sources_are_stated() -> None:
    patient = {
        **PATIENT,
        "meta": {
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
            ]
        },
    }
    bundle = build_summary(
        patient, [], base_url=FHIR_BASE, now=NOW, incomplete_sources=["Region <Syd>"]
    )
    composition = bundle["entry"][0]["resource"]
    assert composition["confidentiality"] == "R"
    assert "may be incomplete" in composition["text"]["div"]
    assert "Region &lt;Syd&gt;" in composition["text"]["div"]
    assert (
        build_summary(PATIENT, [], base_url=FHIR_BASE, now=NOW)["entry"][0]["resource"][
            "confidentiality"
        ]
        == "N"
    )


def test_gateway_bookkeeping_extensions_are_left_out_and_original_quantity_kept() -> None:
    result = lab("q", "718-7", "2026-01-01T08:00:00Z", 1)
    result["meta"] = {
        "extension": [
            {
                "url": "https://samlad.se/fhir/StructureDefinition/fetched-at",
                "valueInstant": "2026-01-01T00:00:00Z",
            }
        ]
    }
    result["extension"] = [
        {
            "url": "https://samlad.se/fhir/StructureDefinition/also-reported-by",
            "valueUri": "urn:samlad:source:x",
        }
    ]
    result["valueQuantity"]["extension"] = [
        {
            "url": "https://samlad.se/fhir/StructureDefinition/original-quantity",
            "valueQuantity": {"value": 10, "unit": "g/dL"},
        }
    ]
    bundle = build_summary(PATIENT, [result], base_url=FHIR_BASE, now=NOW)
    text = json.dumps(bundle)
    assert "fetched-at" not in text
    assert "also-reported-by" not in text
    assert "original-quantity" in text


# -- validation against the official package -------------------------------------------------------


def test_validator_defects_show_on_the_official_example(
    ips_validator: Any, official_example: dict[str, Any]
) -> None:
    """Each listed defect fires on HL7's own conformant example, and nothing else does."""
    report = ips_validator.validate_resource(official_example)
    seen = {_defect(i) for i in report.errors}
    unexplained = [i for i in report.errors if _defect(i) is None]
    # The official example also codes Composition.type with a display, which this
    # validator wrongly compares whole against the pattern (the summary leaves it out).
    unexplained = [
        i for i in unexplained if (i.code, i.path) != ("profile.pattern", "Composition.type")
    ]
    assert unexplained == [], _describe(unexplained)
    assert set(VALIDATOR_DEFECTS) <= seen


def test_validator_catches_a_broken_summary(ips_validator: Any) -> None:
    """The profiles are really applied to the entries (by their meta.profile)."""
    bundle = build_summary(PATIENT, small_record(), base_url=FHIR_BASE, now=NOW)
    by_id = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
    del by_id["p1"]["birthDate"]
    del by_id["hb-new"]["performer"]
    by_id["hb-new"]["category"] = []
    del by_id["htn"]["code"]
    report = ips_validator.validate_resource(bundle)
    problems = {(i.code, i.path) for i in report.errors if _defect(i) is None}
    assert ("profile.cardinality.min", "Patient.birthDate") in problems
    assert ("profile.cardinality.min", "Observation.performer") in problems
    assert ("profile.cardinality.min", "Observation.category") in problems
    assert any(path == "Condition.code" for _, path in problems)


@pytest.mark.anyio
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_summary_of_the_test_person_validates_against_ips(
    gateway: Gateway, ips_validator: Any
) -> None:
    patient, resources = await _record(gateway)
    bundle = build_summary(patient, resources, base_url=FHIR_BASE, now=NOW)

    # The rules pyfhircheck cannot check (its slice defects), checked here.
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert [e["resource"]["resourceType"] for e in bundle["entry"][1:]].count("Composition") == 0
    found = sections(bundle)
    assert set(found) >= REQUIRED_SECTIONS
    assert len(found) == len(composition["section"])  # each section once
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    medication_entries = [urls[r["reference"]] for r in found["10160-0"]["entry"]]
    dispensed = [r for r in medication_entries if r["resourceType"] == "MedicationDispense"]
    assert dispensed, "the latest dispensing of current prescriptions is listed"
    for dispense in dispensed:
        (prescription,) = dispense["authorizingPrescription"]
        assert urls[prescription["reference"]] in medication_entries
        assert "meta" not in dispense or "profile" not in dispense["meta"]
    found["10160-0"]["entry"] = [
        r
        for r in found["10160-0"]["entry"]
        if urls[r["reference"]]["resourceType"] != "MedicationDispense"
    ]
    for code, expected_type in {
        "10160-0": "MedicationRequest",
        "48765-2": "AllergyIntolerance",
        "11450-4": "Condition",
        "11369-6": "Immunization",
        "30954-2": "Observation DiagnosticReport",
        "47519-4": "Procedure",
        "18776-5": "CarePlan",
        "104605-1": "Flag",
    }.items():
        entries = found[code]["entry"]
        assert entries, f"section {code} is empty for the test person"
        for ref in entries:
            resource = urls[ref["reference"]]
            assert resource["resourceType"] in expected_type.split()
            profile = IPS_PROFILES.get(resource["resourceType"])
            assert resource.get("meta", {}).get("profile") == ([profile] if profile else None)
    assert urls[composition["subject"]["reference"]]["meta"]["profile"] == [IPS_PROFILES["Patient"]]
    allergies = [urls[r["reference"]] for r in found["48765-2"]["entry"]]
    assert "emptyReason" not in found["48765-2"]
    assert sorted(a["criticality"] for a in allergies) == ["high", "low", "unable-to-assess"]
    vaccinated = [urls[r["reference"]]["occurrenceDateTime"] for r in found["11369-6"]["entry"]]
    assert vaccinated == sorted(vaccinated, reverse=True)
    assert vaccinated[-1] < "1920"
    procedures = [urls[r["reference"]] for r in found["47519-4"]["entry"]]
    assert [p["code"]["coding"][0]["code"] for p in procedures] == ["DF027", "JEA00"]
    assert len(found["18776-5"]["entry"]) == 3, "each region's current care plan"
    (alert,) = [urls[r["reference"]] for r in found["104605-1"]["entry"]]
    assert alert["status"] == "active", "the ended MRSA flag is left out"
    results = [urls[r["reference"]] for r in found["30954-2"]["entry"]]
    analyses = [
        next(c["code"] for c in r["code"]["coding"] if c["system"] == LOINC)
        for r in results
        if r["resourceType"] == "Observation"
    ]
    assert len(analyses) == len(set(analyses)), "one (the latest) result per analysis"
    reports = [r for r in results if r["resourceType"] == "DiagnosticReport"]
    assert any(r.get("conclusion") for r in reports), "the X-ray report"
    assert any(r.get("result") for r in reports), "lab reports with their listed results"
    for report in reports:
        assert "basedOn" not in report or "reference" not in report["basedOn"][0]
        named = [r["reference"] for r in report.get("result", []) if "reference" in r]
        for reference in named:  # a result not in the document keeps only its display
            assert urls[reference]["resourceType"] == "Observation"
    assert any("reference" in result for report in reports for result in report.get("result", []))
    vital_signs = [urls[r["reference"]] for r in found[VITAL_SIGNS]["entry"]]
    assert {o["meta"]["profile"][0] for o in vital_signs} == {IPS_PROFILES["vital-signs"]}
    shown = [
        next(c["code"] for c in o["code"]["coding"] if c["system"] == LOINC) for o in vital_signs
    ]
    assert len(shown) == len(set(shown)), "one (the latest) reading per vital sign"
    assert {"85354-9", "29463-7", "8867-4"} <= set(shown)

    # R4 structure, by an independent validator.
    assert fhirkit.validate(bundle) == []

    # The official IPS profiles.
    report = ips_validator.validate_resource(bundle)
    unexplained = [i for i in report.errors if _defect(i) is None]
    assert unexplained == [], _describe(unexplained)
    # FHIR's own vital signs profile is in the R4 core package, which is not vendored: the
    # validator says it cannot apply it (and the entries are checked as Observations).
    warnings = _describe(report.warnings)
    assert all(
        "profile.element.binding.extensible Condition.category" in w
        or f"profile.unknown Observation.meta.profile: Profile {IPS_PROFILES['vital-signs']}" in w
        for w in warnings
    ), warnings
