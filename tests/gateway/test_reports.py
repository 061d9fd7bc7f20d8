"""DiagnosticReport and ServiceRequest with hand-made resources (in memory, no servers):
their search parameters (reference parameters among them), their duplicate rules, whose
care unit each is, and what a shown report may say of hidden results and referrals.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from adapters.base import FhirResource
from consent.decision import AccessDecision
from consent.visibility import Visibility
from fhir_profiles.record_status import CARE_PROVIDER_TAG, CARE_UNIT_TAG, approval_tag, care_tags
from gateway.answer.search import (
    apply,
    include_types,
    included,
    includes_for,
    parse_search,
    revincludes_for,
    search_params_for,
)
from gateway.answer.summary.selection import listed_reports
from gateway.errors import BadRequest
from gateway.merge.record import unify
from tests.gateway.test_merge_rules import PERSON, gathered, patient, source

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
HSA = "urn:oid:1.2.752.129.2.1.4.1"
SECTION = "http://terminology.hl7.org/CodeSystem/v2-0074"
PATIENT = "Patient/p-opaque-1"
LAB = {"identifier": {"system": HSA, "value": "SE2321009001-KLKM"}, "display": "Klinisk kemi"}
XRAY = {"identifier": {"system": HSA, "value": "SE2321009001-RONT"}, "display": "Röntgen"}
HEALTH_CENTRE = {
    "reference": "Organization/vc",
    "identifier": {"system": HSA, "value": "SE2321009001-VCNB"},
}


def report(resource_id: str, code: str, section: str, **extra: Any) -> FhirResource:
    return {
        "resourceType": "DiagnosticReport",
        "id": resource_id,
        "status": "final",
        "category": [{"coding": [{"system": SECTION, "code": section}]}],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": PATIENT},
        **extra,
    }


def request(resource_id: str, code: str, **extra: Any) -> FhirResource:
    return {
        "resourceType": "ServiceRequest",
        "id": resource_id,
        "status": "active",
        "intent": "order",
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "subject": {"reference": PATIENT},
        **extra,
    }


REPORTS = [
    report("lipids", "57698-3", "LAB", effectiveDateTime="2026-08-09T07:58:00+02:00",
           performer=[LAB], result=[{"reference": "Observation/ldl"},
                                    {"reference": "Observation/hdl"}]),
    report("xray", "36643-5", "RAD", effectiveDateTime="2026-03-13T13:20:00+01:00",
           issued="2026-03-13T14:05:00Z", performer=[XRAY],
           basedOn=[{"reference": "ServiceRequest/referral"}], conclusion="Normala lungor."),
    report("cbc", "58410-2", "LAB", status="preliminary",
           effectiveDateTime="2025-10-10T08:45:00+02:00", performer=[LAB],
           result=[{"reference": "Observation/hb"}]),
]  # fmt: skip
REQUESTS = [
    request("referral", "363679005", status="completed", authoredOn="2026-03-10T10:40:00+01:00",
            requester=HEALTH_CENTRE, performer=[XRAY]),
    request("echo", "40701008", authoredOn="2026-10-12T14:10:00+02:00", priority="urgent",
            requester=HEALTH_CENTRE, intent="proposal"),
]  # fmt: skip


def found(
    resource_type: str, params: list[tuple[str, str]], resources: list[FhirResource]
) -> list[str]:
    spec = parse_search(resource_type, params, strict=True)
    return [r["id"] for r in apply(spec, resources)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("category", f"{SECTION}|RAD")], ["xray"]),
        ([("code", f"{LOINC}|57698-3")], ["lipids"]),
        ([("status", "final")], ["lipids", "xray"]),
        ([("date", "ge2026-01-01"), ("_sort", "-date")], ["lipids", "xray"]),
        ([("issued", "2026-03-13")], ["xray"]),
        ([("based-on", "ServiceRequest/referral")], ["xray"]),
        ([("based-on", "referral")], ["xray"]),
        ([("based-on", "Observation/referral")], []),
        ([("based-on:missing", "true")], ["cbc", "lipids"]),
        ([("result", "Observation/hb,Observation/ldl")], ["cbc", "lipids"]),
        ([("result", "https://samlad.example/fhir/Observation/hdl")], ["lipids"]),
        ([("performer:identifier", f"{HSA}|SE2321009001-RONT")], ["xray"]),
        ([("performer:identifier", "SE2321009001-KLKM")], ["cbc", "lipids"]),
        ([("subject", PATIENT), ("category", "LAB")], ["cbc", "lipids"]),
    ],
)
def test_report_parameters(params: list[tuple[str, str]], expected: list[str]) -> None:
    assert found("DiagnosticReport", params, REPORTS) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("authored", "2026-03")], ["referral"]),
        ([("status", "active")], ["echo"]),
        ([("intent", "order")], ["referral"]),
        ([("priority", "urgent")], ["echo"]),
        ([("code", f"{SNOMED}|40701008")], ["echo"]),
        ([("requester", "Organization/vc")], ["echo", "referral"]),
        ([("performer:identifier", f"{HSA}|SE2321009001-RONT")], ["referral"]),
        ([("performer:missing", "true")], ["echo"]),
        ([("_sort", "-authored")], ["echo", "referral"]),
    ],
)
def test_request_parameters(params: list[tuple[str, str]], expected: list[str]) -> None:
    assert found("ServiceRequest", params, REQUESTS) == expected


def test_subject_names_the_patient_like_patient() -> None:
    spec = parse_search("ServiceRequest", [("subject", PATIENT)], strict=True)
    assert spec.patient == "p-opaque-1"
    assert not spec.filters
    with pytest.raises(BadRequest):
        parse_search("ServiceRequest", [("subject", PATIENT), ("patient", "other")], strict=True)
    with pytest.raises(BadRequest):
        parse_search("DiagnosticReport", [("result", "Observation/")], strict=True)
    params = search_params_for("DiagnosticReport")
    assert {params[n] for n in ("based-on", "result", "performer", "subject")} == {"reference"}
    assert search_params_for("ServiceRequest")["authored"] == "date"


def test_report_includes_follow_result_and_based_on() -> None:
    assert set(includes_for("DiagnosticReport")) >= {
        "DiagnosticReport:result",
        "DiagnosticReport:based-on",
    }
    assert "DiagnosticReport:result" in revincludes_for("Observation")
    assert "DiagnosticReport:based-on" in revincludes_for("ServiceRequest")
    spec = parse_search(
        "DiagnosticReport",
        [("_include", "DiagnosticReport:result"), ("_include", "DiagnosticReport:based-on")],
        strict=True,
    )
    assert include_types(spec) == ("Observation", "ServiceRequest")
    hb = {"resourceType": "Observation", "id": "hb"}
    ldl = {"resourceType": "Observation", "id": "ldl"}
    # hdl is not among the candidates (hidden, say): nothing is included for it.
    candidates = [hb, ldl, *REQUESTS]
    matches = apply(spec, REPORTS)
    assert [r["id"] for r in included(spec, matches, candidates)] == ["hb", "ldl", "referral"]
    back = parse_search(
        "ServiceRequest", [("_revinclude", "DiagnosticReport:based-on")], strict=True
    )
    assert [r["id"] for r in included(back, REQUESTS, REPORTS)] == ["xray"]


# -- duplicates and care units -----------------------------------------------------------


def merged_ids(a: list[FhirResource], b: list[FhirResource]) -> list[str]:
    a, b = copy.deepcopy(a), copy.deepcopy(b)  # the merge rewrites its input in place
    result = unify(
        gathered((source("region-a"), patient(), a), (source("region-b"), patient(), b)),
        PERSON,
        "unified-id",
        frozenset({"DiagnosticReport", "ServiceRequest"}),
    )
    return [r["id"] for r in result.resources]


def local(resource: FhirResource) -> FhirResource:
    return copy.deepcopy(resource) | {"subject": {"reference": "Patient/local-p"}}


def test_a_report_is_the_same_fact_by_code_time_and_issuer_else_identifier() -> None:
    lipids = local(REPORTS[0])
    in_utc = lipids | {"effectiveDateTime": "2026-08-09T05:58:00Z"}
    assert merged_ids([lipids], [in_utc]) == ["region-a.lipids"]
    other_lab = lipids | {"performer": [{"display": "Labmedicin Syd"}]}
    later = lipids | {"effectiveDateTime": "2026-08-09T08:58:00+02:00"}
    for different in (other_lab, later):
        assert merged_ids([lipids], [different]) == ["region-a.lipids", "region-b.lipids"]
    # Each source's own identifier does not keep one report apart from itself.
    own_a = [{"system": "urn:oid:1.2.752.29.4.19", "value": "L26-0809-0042"}]
    own_b = [{"system": "http://regionsyd.example.se/svar", "value": "977"}]
    assert merged_ids([lipids | {"identifier": own_a}], [lipids | {"identifier": own_b}]) == [
        "region-a.lipids"
    ]
    # Without an issuer: the identifier decides, and without one it is never merged.
    nobody = {k: v for k, v in lipids.items() if k != "performer"}
    assert merged_ids([nobody | {"identifier": own_a}], [nobody | {"identifier": own_a}]) == [
        "region-a.lipids"
    ]
    assert merged_ids([nobody | {"identifier": own_a}], [nobody | {"identifier": own_b}]) == [
        "region-a.lipids",
        "region-b.lipids",
    ]
    assert merged_ids([nobody], [copy.deepcopy(nobody)]) == [
        "region-a.lipids",
        "region-b.lipids",
    ], "no issuer, no identifier: never merged"


def test_a_request_is_the_same_fact_by_identifier_else_code_time_and_requester() -> None:
    referral = local(REQUESTS[0])
    same = referral | {"requester": {"identifier": HEALTH_CENTRE["identifier"]}}
    assert merged_ids([referral], [same]) == ["region-a.referral"]
    next_day = referral | {"authoredOn": "2026-03-11T10:40:00+01:00"}
    assert merged_ids([referral], [next_day]) == ["region-a.referral", "region-b.referral"]


def test_a_request_is_its_requesting_units_record_and_a_report_its_performers() -> None:
    result = unify(
        gathered((source("region-a"), patient(), [local(REQUESTS[0]), local(REPORTS[1])])),
        PERSON,
        "unified-id",
        frozenset({"DiagnosticReport", "ServiceRequest"}),
    )
    units = {r["resourceType"]: care_tags(r)[1] for r in result.resources}
    assert units == {"ServiceRequest": "SE2321009001-VCNB", "DiagnosticReport": "SE2321009001-RONT"}


# -- what a shown report says of hidden resources -----------------------------------------


def made_by(resource: FhirResource, unit: str | None) -> FhirResource:
    tags = [{"system": CARE_PROVIDER_TAG, "code": "SE2321009001-NORD"}]
    tags += [{"system": CARE_UNIT_TAG, "code": unit}] if unit else []
    return resource | {"meta": {"tag": tags}}


BLOCKED = Visibility(AccessDecision(True, "consent", hidden_units=frozenset({"SE2321009001-VCNB"})))
OPEN = Visibility(AccessDecision(True, "consent"))


def test_a_shown_report_leaves_out_what_it_would_tell_of_hidden_resources() -> None:
    xray = made_by(REPORTS[1], "SE2321009001-RONT")
    lipids = made_by(REPORTS[0], "SE2321009001-KLKM")
    referral = made_by(REQUESTS[0], "SE2321009001-VCNB")  # the blocked unit's
    ldl = made_by({"resourceType": "Observation", "id": "ldl"}, "SE2321009001-KLKM")
    hdl = made_by({"resourceType": "Observation", "id": "hdl"}, None)  # unit unknown: hidden
    read = {"DiagnosticReport", "Observation", "ServiceRequest"}
    (shown,) = BLOCKED.visible_record([[xray, lipids, referral, ldl, hdl]], read)
    by_id = {r["id"]: r for r in shown}
    assert set(by_id) == {"xray", "lipids", "ldl"}
    assert "basedOn" not in by_id["xray"], "the referral is hidden"
    assert by_id["xray"]["conclusion"] == "Normala lungor."
    assert by_id["lipids"]["result"] == [{"reference": "Observation/ldl"}]
    assert xray["basedOn"], "the inputs are not changed"
    assert len(lipids["result"]) == 2
    # Nothing hidden: nothing left out, and the very same objects.
    (everything,) = OPEN.visible_record([[xray, lipids, referral, ldl, hdl]], read)
    assert everything[0] is xray
    assert everything[1] is lipids


def test_a_report_read_without_its_targets_leaves_them_out_only_when_some_may_be_hidden() -> None:
    lipids = made_by(REPORTS[0], "SE2321009001-KLKM")
    (blind,) = BLOCKED.visible_record([[lipids]], {"DiagnosticReport"})
    assert "result" not in blind[0]
    (open_,) = OPEN.visible_record([[lipids]], {"DiagnosticReport"})
    assert open_[0]["result"] == lipids["result"]
    # A source that states approval (the legacy one) may hold back what its report names;
    # one that does not (the FHIR regions) holds back nothing.
    held_back = Visibility(AccessDecision(True, "self", hides_unapproved=True))
    assert held_back.concealing(lipids, set(), {"DiagnosticReport"}) is lipids
    legacy = lipids | {"meta": {"tag": [*lipids["meta"]["tag"], approval_tag(True)]}}
    for reader in (held_back, OPEN):  # a nullified result is hidden from everyone
        assert "result" not in reader.concealing(legacy, set(), {"DiagnosticReport"})
    read = {"DiagnosticReport", "Observation"}
    assert held_back.concealing(legacy, set(), read) is legacy, "read: nothing hidden"


# -- the patient summary's results -------------------------------------------------------


def test_the_summary_lists_reports_of_listed_results_and_written_examinations() -> None:
    hb = {"resourceType": "Observation", "id": "hb"}
    consult = report(
        "answer",
        "11488-4",
        "LAB",
        effectiveDateTime="2025-11-20T14:00:00+01:00",
        conclusion="Metformin fortsätter.",
        basedOn=[{"reference": "ServiceRequest/x"}],
    )
    del consult["category"]  # a consultation's answer: not a result
    withdrawn = REPORTS[1] | {"id": "withdrawn", "status": "entered-in-error"}
    undated = {k: v for k, v in REPORTS[0].items() if k != "effectiveDateTime"} | {"id": "undated"}
    unwritten = {k: v for k, v in REPORTS[1].items() if k != "conclusion"} | {"id": "unwritten"}
    candidates = [*REPORTS, consult, withdrawn, undated, unwritten]
    listed = listed_reports(candidates, [hb])
    # The lipid report groups no listed result; the X-ray is newer than the blood count.
    assert [r["id"] for r in listed] == ["xray", "cbc"]
    assert listed_reports(candidates, []) == [REPORTS[1]]
