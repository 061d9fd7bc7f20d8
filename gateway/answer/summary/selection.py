"""What the patient summary takes from the record: for each section, which resources, in
which order (the rules are in the package docstring).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from fhir_profiles.codes import (
    DIAGNOSTIC_SERVICE_SECTION_SYSTEM,
    LOINC_SYSTEM,
    OBSERVATION_CATEGORY_SYSTEM,
)
from gateway.answer.summary.dispensed import latest_dispenses
from gateway.answer.summary.fhir_values import (
    EPOCH,
    JsonObject,
    code_of,
    codings,
    concept_text,
    effective,
    encounter_start,
    first_code,
    newest_first,
    onset,
    status_code,
)
from gateway.answer.summary.vital_signs import latest_vital_signs

CURRENT_MEDICATION_STATUSES = frozenset({"active", "on-hold"})
ACTIVE_CLINICAL_STATUSES = frozenset({"active", "recurrence", "relapse"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
RESULT_STATUSES = frozenset({"registered", "preliminary", "final", "amended", "corrected"})
LEFT_OUT_ENCOUNTER_STATUSES = frozenset({"planned", "cancelled", "entered-in-error"})
GIVEN_IMMUNIZATION_STATUSES = frozenset({"completed"})
LEFT_OUT_PROCEDURE_STATUSES = frozenset({"preparation", "not-done", "entered-in-error"})
CURRENT_CARE_PLAN_STATUSES = frozenset({"active", "on-hold"})
#: A report's statuses the IPS lists (diagnostics-report-status-uv-ips; not withdrawn).
REPORT_STATUSES = frozenset(
    {"registered", "partial", "preliminary", "final", "amended", "corrected", "appended"}
)


@dataclass(frozen=True)
class Chosen:
    """The resources each section lists, in the order it lists them."""

    medications: list[JsonObject]
    #: Prescriptions left out because they are no longer current (completed, stopped).
    earlier_medications: int
    #: The latest dispensing of each current prescription.
    dispenses: list[JsonObject]
    allergies: list[JsonObject]
    problems: list[JsonObject]
    past_problems: list[JsonObject]
    immunizations: list[JsonObject]
    results: list[JsonObject]
    #: DiagnosticReports: of the listed results, and imaging and other examinations.
    reports: list[JsonObject]
    encounters: list[JsonObject]
    procedures: list[JsonObject]
    care_plans: list[JsonObject]
    #: Care plans left out because they are no longer current (completed, revoked).
    earlier_care_plans: int
    alerts: list[JsonObject]
    vital_signs: list[JsonObject]

    def resources(self) -> list[JsonObject]:
        """Every chosen resource, in the order of the document's entries."""
        return [
            *self.medications,
            *self.dispenses,
            *self.allergies,
            *self.problems,
            *self.past_problems,
            *self.immunizations,
            *self.results,
            *self.reports,
            *self.vital_signs,
            *self.encounters,
            *self.procedures,
            *self.care_plans,
            *self.alerts,
        ]


def choose(
    resources: Iterable[object], *, results_per_analysis: int, max_encounters: int
) -> Chosen:
    """What each section takes from ``resources`` (the first of two with one id wins)."""
    by_type = _by_type(resources)
    medications, earlier = current_medications(by_type["MedicationRequest"])
    problems, past_problems = split_conditions(by_type["Condition"])
    care_plans, earlier_care_plans = current_care_plans(by_type["CarePlan"])
    results = latest_results(by_type["Observation"], results_per_analysis)
    return Chosen(
        medications=medications,
        earlier_medications=earlier,
        dispenses=latest_dispenses(by_type["MedicationDispense"], medications),
        allergies=recorded_allergies(by_type["AllergyIntolerance"]),
        problems=problems,
        past_problems=past_problems,
        immunizations=given_immunizations(by_type["Immunization"]),
        results=results,
        reports=listed_reports(by_type["DiagnosticReport"], results),
        encounters=recent_encounters(by_type["Encounter"], max_encounters),
        procedures=past_procedures(by_type["Procedure"]),
        care_plans=care_plans,
        earlier_care_plans=earlier_care_plans,
        alerts=active_alerts(by_type["Flag"]),
        vital_signs=latest_vital_signs(by_type["Observation"]),
    )


def _by_type(resources: Iterable[object]) -> defaultdict[str, list[JsonObject]]:
    by_type: defaultdict[str, list[JsonObject]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for resource in resources:
        if not (isinstance(resource, dict) and resource.get("id") and resource.get("resourceType")):
            continue
        key = (str(resource["resourceType"]), str(resource["id"]))
        if key not in seen:  # the first of two resources with one id wins
            seen.add(key)
            by_type[key[0]].append(resource)
    return by_type


def current_medications(requests: Iterable[JsonObject]) -> tuple[list[JsonObject], int]:
    """The current prescriptions, newest first, and how many earlier ones are left out."""
    prescriptions = [
        m
        for m in requests
        if m.get("status") != "entered-in-error"
        and m.get("doNotPerform") is not True
        and ("medicationCodeableConcept" in m or "medicationReference" in m)
    ]
    current = newest_first(
        (m for m in prescriptions if m.get("status") in CURRENT_MEDICATION_STATUSES),
        lambda m: m.get("authoredOn"),
    )
    return current, len(prescriptions) - len(current)


def _is_current_problem(condition: JsonObject) -> bool:
    status = status_code(condition.get("clinicalStatus"))
    if status:
        return status in ACTIVE_CLINICAL_STATUSES
    return not any(key.startswith("abatement") for key in condition)


def split_conditions(
    conditions: Iterable[JsonObject],
) -> tuple[list[JsonObject], list[JsonObject]]:
    """The current problems and the past ones, each newest first; refuted ones left out."""
    kept = [
        c
        for c in conditions
        if status_code(c.get("verificationStatus")) not in EXCLUDED_VERIFICATION and c.get("code")
    ]
    problems = newest_first((c for c in kept if _is_current_problem(c)), onset)
    past_problems = newest_first((c for c in kept if not _is_current_problem(c)), onset)
    return problems, past_problems


def recorded_allergies(allergies: Iterable[JsonObject]) -> list[JsonObject]:
    """The allergies and intolerances, newest recorded first; refuted ones left out."""
    return newest_first(
        (
            a
            for a in allergies
            if status_code(a.get("verificationStatus")) not in EXCLUDED_VERIFICATION
            and a.get("code")
        ),
        lambda a: a.get("recordedDate") or a.get("onsetDateTime"),
    )


def given_immunizations(immunizations: Iterable[JsonObject]) -> list[JsonObject]:
    """The vaccinations given (status completed), newest first."""
    return newest_first(
        (
            i
            for i in immunizations
            if i.get("status") in GIVEN_IMMUNIZATION_STATUSES and i.get("vaccineCode")
        ),
        lambda i: i.get("occurrenceDateTime"),
    )


def _analysis_key(observation: JsonObject) -> tuple[str, str] | None:
    code = observation.get("code")
    loinc = code_of(code, LOINC_SYSTEM)
    return (LOINC_SYSTEM, loinc) if loinc else first_code(code)


def _has_value(observation: JsonObject) -> bool:
    return any(
        key.startswith("value") or key in ("component", "hasMember", "dataAbsentReason")
        for key in observation
    )


def _is_lab(observation: JsonObject) -> bool:
    return any(
        c.get("system") == OBSERVATION_CATEGORY_SYSTEM and c.get("code") == "laboratory"
        for concept in observation.get("category") or ()
        for c in codings(concept)
    )


def latest_results(observations: Iterable[JsonObject], per_analysis: int) -> list[JsonObject]:
    """The latest ``per_analysis`` laboratory results of each analysis, newest first."""
    groups: dict[tuple[str, str], list[tuple[datetime, str, JsonObject]]] = defaultdict(list)
    for obs in observations:
        when = effective(obs)
        key = _analysis_key(obs)
        if (
            when is None
            or key is None
            or obs.get("status") not in RESULT_STATUSES
            or not _is_lab(obs)
            or not _has_value(obs)
        ):
            continue
        groups[key].append((when, str(obs.get("id", "")), obs))
    chosen: list[tuple[datetime, str, JsonObject]] = []
    for candidates in groups.values():
        candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
        chosen.extend(candidates[:per_analysis])
    chosen.sort(key=lambda c: (-c[0].timestamp(), concept_text(c[2].get("code")), c[1]))
    return [obs for _, _, obs in chosen]


def _is_examination(report: JsonObject) -> bool:
    """Imaging and other examinations: a diagnostic service section other than the
    laboratory's (a consultation's answer has none)."""
    return any(
        c.get("system") == DIAGNOSTIC_SERVICE_SECTION_SYSTEM and c.get("code") != "LAB"
        for concept in report.get("category") or ()
        for c in codings(concept)
    )


def listed_reports(
    reports: Iterable[JsonObject], results: Iterable[JsonObject]
) -> list[JsonObject]:
    """The reports that group any of the listed ``results``, and the imaging and other
    examination reports with a conclusion or a written report, newest first; a report
    needs a code and an effective time, and a status that is not withdrawn."""
    listed = {f"Observation/{o.get('id')}" for o in results}
    chosen = []
    for report in reports:
        if (
            report.get("status") not in REPORT_STATUSES
            or not report.get("code")
            or effective(report) is None
        ):
            continue
        grouped = {r.get("reference") for r in report.get("result") or () if isinstance(r, dict)}
        written = bool(report.get("conclusion") or report.get("presentedForm"))
        if grouped & listed or (_is_examination(report) and written):
            chosen.append(report)
    return newest_first(chosen, lambda r: (effective(r) or EPOCH).isoformat())


def recent_encounters(encounters: Iterable[JsonObject], limit: int) -> list[JsonObject]:
    """The ``limit`` most recent encounters that took place (not planned or cancelled)."""
    return newest_first(
        (e for e in encounters if e.get("status") not in LEFT_OUT_ENCOUNTER_STATUSES),
        encounter_start,
    )[:limit]


def _performed(procedure: JsonObject) -> object:
    period = procedure.get("performedPeriod")
    start = period.get("start") if isinstance(period, dict) else None
    return procedure.get("performedDateTime") or start


def past_procedures(procedures: Iterable[JsonObject]) -> list[JsonObject]:
    """The procedures done or under way, newest first (not those planned, not done or
    entered in error)."""
    return newest_first(
        (
            p
            for p in procedures
            if p.get("status") not in LEFT_OUT_PROCEDURE_STATUSES and p.get("code")
        ),
        _performed,
    )


def current_care_plans(plans: Iterable[JsonObject]) -> tuple[list[JsonObject], int]:
    """The current care plans (active, on hold), newest first, and how many others (not
    entered in error) are left out."""
    kept = [p for p in plans if p.get("status") != "entered-in-error"]
    current = newest_first(
        (p for p in kept if p.get("status") in CURRENT_CARE_PLAN_STATUSES),
        lambda p: (p.get("period") or {}).get("start") or p.get("created"),
    )
    return current, len(kept) - len(current)


def active_alerts(flags: Iterable[JsonObject]) -> list[JsonObject]:
    """The alerts in force (status active), newest first."""
    return newest_first(
        (f for f in flags if f.get("status") == "active" and f.get("code")),
        lambda f: (f.get("period") or {}).get("start"),
    )
