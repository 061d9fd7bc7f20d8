"""Conflicting demographics: the rule that decides the unified Patient, and the report.

Linked source Patients that disagree on name, sex, birth date or protected identity are
never merged silently: the unified Patient follows the documented rule and names the
sources and the field that differ, never the values.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhir_profiles.codes import SOURCE_STATUS_SYSTEM
from fhir_profiles.demographics import (
    CONFIDENTIALITY,
    DEMOGRAPHIC_CONFLICT_URL,
    Conflict,
    SourcePatient,
    conflicts_of,
    decide,
    legal_sex,
)
from fhir_profiles.identifiers import luhn_check_digit, parse_person_identifier
from fhir_profiles.validate import errors
from gateway.answer.bundles import source_status_outcome
from gateway.merge.linking import unified_patient
from gateway.sources import SourceReport, SourceStatus
from simregions.data import FORMER_FAMILY_NAME, former_name_person
from tests.gateway.conftest import Gateway

PERSON = parse_person_identifier("191212121212")  # male, born 1912-12-12
PNR = "http://electronichealth.se/identifier/personnummer"
SAMNR = "http://electronichealth.se/identifier/samordningsnummer"


def samordningsnummer(birth: str, serial: str) -> str:
    """A valid samordningsnummer (day + 60) for ``birth`` (YYYYMMDD) and 3 serial digits."""
    nine = birth[2:6] + f"{int(birth[6:8]) + 60:02d}" + serial
    return birth[:6] + nine[4:] + str(luhn_check_digit(nine))


def patient(updated: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "local",
        "identifier": [{"system": PNR, "value": PERSON.value}],
        "name": [{"family": "Tolvansson", "given": ["Tolvan"]}],
        "gender": "male",
        "birthDate": "1912-12-12",
    }
    if updated is not None:
        body["meta"] = {"lastUpdated": updated}
    body.update(fields)
    return body


def protected(**fields: Any) -> dict[str, Any]:
    return patient(meta={"security": [{"system": CONFIDENTIALITY, "code": "R"}]}, **fields)


def only(conflicts: list[Conflict], field: str) -> Conflict:
    found = [c for c in conflicts if c.field == field]
    assert len(found) == 1, conflicts
    return found[0]


def test_agreeing_sources_give_no_conflict() -> None:
    decided = decide(PERSON, [SourcePatient("a", patient()), SourcePatient("b", patient())])
    assert decided.conflicts == []
    unified = unified_patient("pid", PERSON, [SourcePatient("a", patient())])
    assert "extension" not in unified


def test_a_name_differing_only_in_case_spacing_or_text_is_no_conflict() -> None:
    other = patient(name=[{"family": " TOLVANSSON ", "given": ["tolvan"], "text": "T. T."}])
    decided = decide(PERSON, [SourcePatient("a", patient()), SourcePatient("b", other)])
    assert decided.conflicts == []


def test_the_most_recently_updated_source_gives_the_name() -> None:
    old = patient("2025-01-01T10:00:00Z")
    new = patient("2026-03-01T10:00:00+01:00", name=[{"family": "Gift", "given": ["Tolvan"]}])
    decided = decide(PERSON, [SourcePatient("a", old), SourcePatient("b", new)])
    assert decided.name == [{"family": "Gift", "given": ["Tolvan"]}]
    assert only(decided.conflicts, "name") == Conflict("name", ("a",), "last-updated", "b")


def test_equal_or_missing_times_fall_back_to_source_order() -> None:
    same = "2026-03-01T10:00:00Z"
    first = patient(same)
    second = patient("2026-03-01T11:00:00+01:00", name=[{"family": "Annan"}])  # same instant
    decided = decide(PERSON, [SourcePatient("a", first), SourcePatient("b", second)])
    assert decided.name == first["name"]
    assert only(decided.conflicts, "name") == Conflict("name", ("b",), "source-order", "a")

    untimed = decide(
        PERSON,
        [SourcePatient("a", patient()), SourcePatient("b", patient(name=[{"family": "X"}]))],
    )
    assert only(untimed.conflicts, "name") == Conflict("name", ("b",), "source-order", "a")


def test_a_timed_source_wins_over_an_untimed_one_whatever_the_order() -> None:
    timed = patient("2020-01-01T00:00:00Z", name=[{"family": "Timed"}])
    decided = decide(PERSON, [SourcePatient("a", patient()), SourcePatient("b", timed)])
    assert decided.name == [{"family": "Timed"}]
    assert only(decided.conflicts, "name").rule == "last-updated"


def test_the_identity_number_decides_sex_and_birth_date() -> None:
    wrong = patient("2030-01-01T00:00:00Z", gender="female", birthDate="1912-12-13")
    decided = decide(PERSON, [SourcePatient("a", patient()), SourcePatient("b", wrong)])
    assert (decided.gender, decided.birth_date) == ("male", "1912-12-12")
    assert only(decided.conflicts, "gender") == Conflict("gender", ("b",), "identity-number")
    assert only(decided.conflicts, "birthDate") == Conflict("birthDate", ("b",), "identity-number")


def test_one_source_contradicting_the_number_is_reported_too() -> None:
    """No other source needs to disagree: a contradiction of the number is never silent."""
    decided = decide(PERSON, [SourcePatient("a", patient(gender="female"))])
    assert decided.gender == "male"
    assert only(decided.conflicts, "gender").sources == ("a",)


def test_an_unknown_sex_contradicts_nothing() -> None:
    decided = decide(PERSON, [SourcePatient("a", patient(gender="unknown"))])
    assert decided.gender == "male"
    assert decided.conflicts == []


def test_a_partial_birth_date_that_fits_the_number_agrees() -> None:
    decided = decide(
        PERSON,
        [
            SourcePatient("a", patient(birthDate="1912")),
            SourcePatient("b", patient(birthDate="1912-12")),
        ],
    )
    assert decided.conflicts == []


def test_a_samordningsnummer_gives_the_real_day_and_its_sex() -> None:
    number = samordningsnummer("19800307", "242")  # serial 242: even second-last digit
    person = parse_person_identifier(number)
    assert person.is_samordningsnummer
    assert legal_sex(person) == "female"
    source = patient(
        identifier=[{"system": SAMNR, "value": number}], gender="female", birthDate="1980-03-67"
    )
    decided = decide(person, [SourcePatient("a", source)])
    assert decided.birth_date == "1980-03-07"
    assert only(decided.conflicts, "birthDate").sources == ("a",)
    assert [c.field for c in decided.conflicts] == ["birthDate"]


def test_protected_by_any_source_protects_and_is_reported() -> None:
    decided = decide(
        PERSON,
        [
            SourcePatient("a", patient(address=[{"city": "Norrhamn"}])),
            SourcePatient("b", protected()),
            SourcePatient("c", patient()),
        ],
    )
    assert decided.protected
    assert decided.address is None
    assert decided.telecom is None
    assert only(decided.conflicts, "protected") == Conflict(
        "protected", ("a", "c"), "any-protected"
    )
    unified = unified_patient(
        "pid",
        PERSON,
        [
            SourcePatient("a", patient(address=[{"city": "Norrhamn"}])),
            SourcePatient("b", protected()),
        ],
    )
    assert unified["meta"]["security"][0]["code"] == "R"
    assert "address" not in unified


def test_a_hidden_source_protects_but_is_never_named() -> None:
    shown = [SourcePatient("a", patient())]
    hidden = SourcePatient("hidden", protected(name=[{"family": "Dold"}]))
    unified = unified_patient("pid", PERSON, shown, [*shown, hidden])
    assert unified["meta"]["security"][0]["code"] == "R"
    assert "hidden" not in json.dumps(unified)
    assert "Dold" not in json.dumps(unified)


def test_the_unified_patient_names_sources_and_fields_never_values() -> None:
    secret = patient(
        "2030-01-01T00:00:00Z",
        name=[{"family": "Hemligsson", "given": ["Greta"]}],
        gender="female",
        birthDate="1911-11-11",
    )
    sources = [
        SourcePatient("region-a", patient("2020-01-01T00:00:00Z")),
        SourcePatient("region-b", secret),
        SourcePatient("region-c", protected()),
    ]
    unified = unified_patient("pid", PERSON, sources)
    extensions = [e for e in unified["extension"] if e["url"] == DEMOGRAPHIC_CONFLICT_URL]
    assert [e["extension"][0]["valueCode"] for e in extensions] == [
        "name",
        "gender",
        "birthDate",
        "protected",
    ]
    recorded = conflicts_of(unified)
    assert recorded == decide(PERSON, sources).conflicts
    assert only(recorded, "name") == Conflict(
        "name", ("region-a", "region-c"), "last-updated", "region-b"
    )
    text = json.dumps(unified["extension"])
    for personal in ("Hemligsson", "Greta", "Tolvan", "1911", "1912", "female", PERSON.value):
        assert personal not in text


def test_the_source_status_reports_each_conflict_with_a_code_and_no_values() -> None:
    secret = patient("2030-01-01T00:00:00Z", name=[{"family": "Hemligsson"}], gender="female")
    unified = unified_patient(
        "pid",
        PERSON,
        [SourcePatient("region-a", patient()), SourcePatient("region-b", secret)],
    )
    report = SourceReport("region-a", "Region A", SourceStatus.OK, None, 1.0)
    outcome = source_status_outcome([report], unified)
    issues = outcome["issue"][1:]
    codes = {
        issue["extension"][0]["extension"][0]["valueCode"]: issue["details"]["coding"][0]
        for issue in issues
    }
    assert codes == {
        "name": {"system": SOURCE_STATUS_SYSTEM, "code": "demographics-differ"},
        "gender": {"system": SOURCE_STATUS_SYSTEM, "code": "contradicts-identity-number"},
    }
    assert all(issue["code"] == "conflict" and issue["severity"] == "warning" for issue in issues)
    name_issue = next(i for i in issues if "name" in i["diagnostics"])
    assert "region-a" in name_issue["diagnostics"]
    assert "region-b" in name_issue["diagnostics"]
    text = json.dumps(issues)
    for personal in ("Hemligsson", "Tolvan", "female", "male", "1912", PERSON.value):
        assert personal not in text
    assert source_status_outcome([report])["issue"][1:] == []


@pytest.mark.anyio
async def test_two_simulated_regions_disagreeing_on_a_name(gateway: Gateway) -> None:
    """Region Nord still has her former family name, updated before Region Väst's."""
    person = former_name_person()
    response = await gateway.client.get(
        "/fhir/Patient",
        params={"identifier": f"{PNR}|{person.pnr}"},
        headers=gateway.citizen(person.pnr),
    )
    assert response.status_code == 200
    entries = response.json()["entry"]
    (unified,) = [e["resource"] for e in entries if e["search"]["mode"] == "match"]
    assert unified["name"][0]["family"] == person.family
    assert unified["gender"] == person.sex
    assert conflicts_of(unified) == [
        Conflict("name", ("region-nord",), "last-updated", "region-vast")
    ]
    (outcome,) = [e["resource"] for e in entries if e["search"]["mode"] == "outcome"]
    (issue,) = [i for i in outcome["issue"] if i["code"] == "conflict"]
    assert issue["details"]["coding"][0]["code"] == "demographics-differ"
    assert "region-nord" in issue["diagnostics"]
    text = json.dumps(outcome)
    for personal in (FORMER_FAMILY_NAME, person.family, person.given, person.pnr):
        assert personal not in text


def test_the_patient_and_the_status_with_conflicts_validate() -> None:
    secret = protected(gender="female", birthDate="1911-11-11", name=[{"family": "Annan"}])
    unified = unified_patient(
        "pid", PERSON, [SourcePatient("region-a", patient()), SourcePatient("region-b", secret)]
    )
    assert len(conflicts_of(unified)) == 4
    report = SourceReport("region-a", "Region A", SourceStatus.OK, None, 1.0)
    assert errors(unified) == []
    assert errors(source_status_outcome([report], unified)) == []
