"""The sections of the patient summary's Composition, one function each: its title, LOINC
code, narrative and entries, and the entries themselves fitted for the document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fhir_profiles.codes import LIST_EMPTY_REASON_SYSTEM, LOINC_SYSTEM
from fhir_profiles.ips import IPS_PROFILES, SECTION_CODES
from gateway.answer.summary.dispensed import dispense_entries
from gateway.answer.summary.entries import (
    DocumentEntries,
    fix_encounter,
    fix_observation,
    fix_procedure,
    prepare,
)
from gateway.answer.summary.fhir_values import JsonObject
from gateway.answer.summary.narrative import (
    ALERT_HEADERS,
    ALLERGY_HEADERS,
    CARE_PLAN_HEADERS,
    ENCOUNTER_HEADERS,
    IMMUNIZATION_HEADERS,
    MEDICATION_HEADERS,
    PAST_PROBLEM_HEADERS,
    PROBLEM_HEADERS,
    PROCEDURE_HEADERS,
    REPORT_HEADERS,
    RESULT_HEADERS,
    alert_row,
    allergy_row,
    care_plan_row,
    condition_row,
    div,
    encounter_row,
    immunization_row,
    medication_row,
    procedure_row,
    report_row,
    result_row,
    table,
)
from gateway.answer.summary.selection import Chosen
from gateway.answer.summary.vital_signs import vital_sign_entries

_EMPTY_REASON_DISPLAYS = {"unavailable": "Unavailable", "nilknown": "Nil Known"}


@dataclass(frozen=True)
class Section:
    """One section of the Composition (``None`` when an optional one is empty) and the
    document entries it lists, fitted for the document."""

    section: JsonObject | None
    entries: list[JsonObject]


def all_sections(
    chosen: Chosen, document: DocumentEntries, *, results_per_analysis: int
) -> list[Section]:
    """Every section, in the Composition's order (which is also the entries' order)."""
    return [
        medication_section(
            chosen.medications, chosen.earlier_medications, document, chosen.dispenses
        ),
        allergy_section(chosen.allergies, document),
        problem_section(chosen.problems, document),
        past_illness_section(chosen.past_problems, document),
        immunization_section(chosen.immunizations, document),
        result_section(chosen.results, chosen.reports, results_per_analysis, document),
        vital_sign_section(chosen.vital_signs, document),
        encounter_section(chosen.encounters, document),
        procedure_section(chosen.procedures, document),
        plan_of_care_section(chosen.care_plans, chosen.earlier_care_plans, document),
        alert_section(chosen.alerts, document),
    ]


def _section(
    key: str,
    title: str,
    narrative: str,
    entries: Sequence[str],
    *,
    empty_reason: str | None = None,
) -> JsonObject:
    code, display = SECTION_CODES[key]
    section: JsonObject = {
        "title": title,
        "code": {"coding": [{"system": LOINC_SYSTEM, "code": code, "display": display}]},
        "text": div(narrative),
    }
    if entries:
        section["entry"] = [{"reference": url} for url in entries]
    elif empty_reason:
        section["emptyReason"] = {
            "coding": [
                {
                    "system": LIST_EMPTY_REASON_SYSTEM,
                    "code": empty_reason,
                    "display": _EMPTY_REASON_DISPLAYS.get(empty_reason, empty_reason),
                }
            ]
        }
    return section


def medication_section(
    medications: list[JsonObject],
    earlier: int,
    document: DocumentEntries,
    dispenses: list[JsonObject] | None = None,
) -> Section:
    """Medication Summary (required): the current prescriptions, how many earlier ones
    are not listed, and the latest dispensing of each current one."""
    prepared = [
        prepare(
            m,
            document,
            table(MEDICATION_HEADERS, [medication_row(m)]),
            IPS_PROFILES["MedicationRequest"],
        )
        for m in medications
    ]
    for request in prepared:
        # Explicit: a request to give the medication (the IPS profile's pattern).
        request["doNotPerform"] = False
    note = (
        f"<p>{earlier} earlier prescription(s) (completed or stopped) are not listed.</p>"
        if earlier
        else ""
    )
    narrative = (
        table(MEDICATION_HEADERS, [medication_row(m) for m in medications]) + note
        if medications
        else "<p>No current prescriptions were found in the connected sources.</p>" + note
    )
    dispensed, dispensed_entries = dispense_entries(dispenses or [], document)
    section = _section(
        "medications",
        "Medication Summary",
        narrative + dispensed,
        document.urls([*medications, *(dispenses or [])]),
        empty_reason="unavailable",
    )
    return Section(section, prepared + dispensed_entries)


def allergy_section(allergies: list[JsonObject], document: DocumentEntries) -> Section:
    """Allergies and Intolerances (required): the allergies and intolerances recorded."""
    prepared = [
        prepare(
            a,
            document,
            table(ALLERGY_HEADERS, [allergy_row(a)]),
            IPS_PROFILES["AllergyIntolerance"],
        )
        for a in allergies
    ]
    section = _section(
        "allergies",
        "Allergies and Intolerances",
        (
            table(ALLERGY_HEADERS, [allergy_row(a) for a in allergies])
            if allergies
            else "<p>No allergies or intolerances were found in the connected sources. "
            "This does not mean the patient has none.</p>"
        ),
        document.urls(allergies),
        empty_reason="unavailable",
    )
    return Section(section, prepared)


def problem_section(problems: list[JsonObject], document: DocumentEntries) -> Section:
    """Problem List (required): the current problems."""
    prepared = [
        prepare(
            c,
            document,
            table(PROBLEM_HEADERS, [condition_row(c, past=False)]),
            IPS_PROFILES["Condition"],
        )
        for c in problems
    ]
    section = _section(
        "problems",
        "Problem List",
        (
            table(PROBLEM_HEADERS, [condition_row(c, past=False) for c in problems])
            if problems
            else "<p>No current problems were found in the connected sources.</p>"
        ),
        document.urls(problems),
        empty_reason="unavailable",
    )
    return Section(section, prepared)


def past_illness_section(past_problems: list[JsonObject], document: DocumentEntries) -> Section:
    """History of Past Illness (optional): the problems that are no longer current."""
    if not past_problems:
        return Section(None, [])
    prepared = [
        prepare(
            c,
            document,
            table(PAST_PROBLEM_HEADERS, [condition_row(c, past=True)]),
            IPS_PROFILES["Condition"],
        )
        for c in past_problems
    ]
    section = _section(
        "past_problems",
        "History of Past Illness",
        table(PAST_PROBLEM_HEADERS, [condition_row(c, past=True) for c in past_problems]),
        document.urls(past_problems),
    )
    return Section(section, prepared)


def immunization_section(immunizations: list[JsonObject], document: DocumentEntries) -> Section:
    """Immunizations (optional): the vaccinations given."""
    if not immunizations:
        return Section(None, [])
    prepared = [
        prepare(
            i,
            document,
            table(IMMUNIZATION_HEADERS, [immunization_row(i)]),
            IPS_PROFILES["Immunization"],
        )
        for i in immunizations
    ]
    section = _section(
        "immunizations",
        "Immunizations",
        table(IMMUNIZATION_HEADERS, [immunization_row(i) for i in immunizations]),
        document.urls(immunizations),
    )
    return Section(section, prepared)


def result_section(
    results: list[JsonObject],
    reports: list[JsonObject],
    per_analysis: int,
    document: DocumentEntries,
) -> Section:
    """Results (optional): the latest laboratory results of each analysis, and the reports
    that group them or tell of an imaging or other examination."""
    if not results and not reports:
        return Section(None, [])
    prepared = []
    for observation in results:
        entry = prepare(
            observation,
            document,
            table(RESULT_HEADERS, [result_row(observation)]),
            IPS_PROFILES["Observation"],
        )
        fix_observation(entry)
        prepared.append(entry)
    prepared += [
        prepare(
            r,
            document,
            table(REPORT_HEADERS, [report_row(r)]),
            IPS_PROFILES["DiagnosticReport"],
        )
        for r in reports
    ]
    narrative = ""
    if results:
        narrative += (
            "<p>The latest result of each analysis.</p>"
            if per_analysis == 1
            else f"<p>The latest {per_analysis} results of each analysis.</p>"
        )
        narrative += table(RESULT_HEADERS, [result_row(o) for o in results])
    if reports:
        narrative += "<p>Reports of these results and of other examinations.</p>"
        narrative += table(REPORT_HEADERS, [report_row(r) for r in reports])
    section = _section(
        "results", "Results", narrative, document.urls(results) + document.urls(reports)
    )
    return Section(section, prepared)


def vital_sign_section(vital_signs: list[JsonObject], document: DocumentEntries) -> Section:
    """Vital Signs (optional): the latest reading of each vital sign."""
    narrative, prepared = vital_sign_entries(vital_signs, document)
    if not prepared:
        return Section(None, [])
    section = _section("vital_signs", "Vital Signs", narrative, document.urls(vital_signs))
    return Section(section, prepared)


def encounter_section(encounters: list[JsonObject], document: DocumentEntries) -> Section:
    """History of Encounters (optional): the most recent encounters."""
    if not encounters:
        return Section(None, [])
    prepared = []
    for encounter in encounters:
        entry = prepare(
            encounter, document, table(ENCOUNTER_HEADERS, [encounter_row(encounter)]), None
        )
        fix_encounter(entry)
        prepared.append(entry)
    section = _section(
        "encounters",
        "History of Encounters",
        f"<p>The {len(encounters)} most recent encounters.</p>"
        + table(ENCOUNTER_HEADERS, [encounter_row(e) for e in encounters]),
        document.urls(encounters),
    )
    return Section(section, prepared)


def procedure_section(procedures: list[JsonObject], document: DocumentEntries) -> Section:
    """History of Procedures (optional): the operations and interventions done."""
    if not procedures:
        return Section(None, [])
    prepared = []
    for procedure in procedures:
        entry = prepare(
            procedure,
            document,
            table(PROCEDURE_HEADERS, [procedure_row(procedure)]),
            IPS_PROFILES["Procedure"],
        )
        fix_procedure(entry)
        prepared.append(entry)
    section = _section(
        "procedures",
        "History of Procedures",
        table(PROCEDURE_HEADERS, [procedure_row(p) for p in procedures]),
        document.urls(procedures),
    )
    return Section(section, prepared)


def plan_of_care_section(
    plans: list[JsonObject], earlier: int, document: DocumentEntries
) -> Section:
    """Plan of Care (optional): the current care plans, and how many earlier ones are not
    listed. The IPS has no profile of its own for a CarePlan entry."""
    if not plans:
        return Section(None, [])
    prepared = [
        prepare(p, document, table(CARE_PLAN_HEADERS, [care_plan_row(p)]), None) for p in plans
    ]
    note = (
        f"<p>{earlier} earlier care plan(s) (completed or revoked) are not listed.</p>"
        if earlier
        else ""
    )
    section = _section(
        "plan_of_care",
        "Plan of Care",
        table(CARE_PLAN_HEADERS, [care_plan_row(p) for p in plans]) + note,
        document.urls(plans),
    )
    return Section(section, prepared)


def alert_section(alerts: list[JsonObject], document: DocumentEntries) -> Section:
    """Alerts (optional): the alert information in force, other than allergies."""
    if not alerts:
        return Section(None, [])
    prepared = [
        prepare(f, document, table(ALERT_HEADERS, [alert_row(f)]), IPS_PROFILES["Flag"])
        for f in alerts
    ]
    section = _section(
        "alerts",
        "Alerts",
        table(ALERT_HEADERS, [alert_row(f) for f in alerts]),
        document.urls(alerts),
    )
    return Section(section, prepared)
