"""The generated XHTML narratives of the patient summary: every source string escaped, and
the table row of each kind of entry.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

from fhir_profiles.codes import ATC_SYSTEM, LOINC_SYSTEM
from gateway.answer.summary.fhir_values import (
    JsonObject,
    code_of,
    concept_text,
    day,
    effective,
    encounter_start,
    first_code,
    onset,
    status_code,
)

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

MEDICATION_HEADERS = ("Medication", "ATC", "Dosage", "Status", "Prescribed")
PROBLEM_HEADERS = ("Problem", "Code", "Clinical status", "Onset")
PAST_PROBLEM_HEADERS = (*PROBLEM_HEADERS, "Resolved")
RESULT_HEADERS = ("Test", "LOINC", "Result", "Reference range", "Interpretation", "Date")
ENCOUNTER_HEADERS = ("Date", "Type", "Care unit", "Status")
ALLERGY_HEADERS = (
    "Substance",
    "Code",
    "Type",
    "Category",
    "Criticality",
    "Clinical status",
    "Reaction",
    "Onset",
)
IMMUNIZATION_HEADERS = ("Vaccine", "Code", "Date", "Status", "Given by")
PROCEDURE_HEADERS = ("Procedure", "Code", "Date", "Status", "Performed by")
CARE_PLAN_HEADERS = ("Plan", "Category", "Status", "Period", "Activities")
ALERT_HEADERS = ("Alert", "Code", "Category", "Since", "Recorded by")
REPORT_HEADERS = ("Report", "Code", "Performed by", "Conclusion", "Results", "Status", "Date")


def esc(value: object) -> str:
    """Text for XHTML: escaped, without characters XML forbids."""
    return html.escape(_XML_INVALID.sub("", str(value)), quote=True)


def div(body: str) -> JsonObject:
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def patient_narrative(patient: JsonObject) -> str:
    names = [
        n.get("text") or " ".join([*n.get("given", ()), n.get("family", "")]).strip()
        for n in patient.get("name") or ()
        if isinstance(n, dict)
    ]
    ids = [str(i.get("value", "")) for i in patient.get("identifier") or () if isinstance(i, dict)]
    return (
        f"<p>{esc(names[0] if names else 'Name unknown')}"
        f", born {esc(patient.get('birthDate', 'unknown'))}"
        f", gender {esc(patient.get('gender', 'unknown'))}"
        + (f", id {esc(ids[0])}" if ids else "")
        + "</p>"
    )


def quantity_text(quantity: object) -> str:
    if not isinstance(quantity, dict) or "value" not in quantity:
        return ""
    unit = quantity.get("unit") or quantity.get("code") or ""
    comparator = quantity.get("comparator", "")
    return f"{comparator}{quantity['value']} {unit}".strip()


def _result_value(observation: JsonObject) -> str:
    if "valueQuantity" in observation:
        return quantity_text(observation["valueQuantity"])
    if "valueCodeableConcept" in observation:
        return concept_text(observation["valueCodeableConcept"])
    for key in ("valueString", "valueBoolean", "valueInteger", "valueDateTime", "valueTime"):
        if key in observation:
            return str(observation[key])
    if "dataAbsentReason" in observation:
        return "(" + concept_text(observation["dataAbsentReason"]) + ")"
    return ""


def _reference_range(observation: JsonObject) -> str:
    for rng in observation.get("referenceRange") or ():
        if isinstance(rng, dict):
            if rng.get("text"):
                return str(rng["text"])
            low, high = quantity_text(rng.get("low")), quantity_text(rng.get("high"))
            if low or high:
                return (
                    f"{low} to {high}" if low and high else (f">= {low}" if low else f"<= {high}")
                )
    return ""


def _interpretation(observation: JsonObject) -> str:
    return ", ".join(
        filter(None, (concept_text(c) for c in observation.get("interpretation") or ()))
    )


def medication_row(request: JsonObject) -> list[str]:
    medication = request.get("medicationCodeableConcept")
    name = concept_text(medication) or str(
        (request.get("medicationReference") or {}).get("display", "")
    )
    dosage = "; ".join(
        str(d["text"]) for d in request.get("dosageInstruction") or () if d.get("text")
    )
    return [
        name,
        code_of(medication, ATC_SYSTEM),
        dosage,
        str(request.get("status", "")),
        day(request.get("authoredOn")),
    ]


def condition_row(condition: JsonObject, *, past: bool) -> list[str]:
    code = condition.get("code")
    first = first_code(code)
    row = [
        concept_text(code),
        first[1] if first else "",
        status_code(condition.get("clinicalStatus")),
        day(onset(condition)),
    ]
    if past:
        row.append(day(condition.get("abatementDateTime")))
    return row


def result_row(observation: JsonObject) -> list[str]:
    code = observation.get("code")
    effective_time = observation.get("effectiveDateTime")
    if not isinstance(effective_time, str):
        when = effective(observation)
        effective_time = when.date().isoformat() if when else ""
    return [
        concept_text(code),
        code_of(code, LOINC_SYSTEM),
        _result_value(observation),
        _reference_range(observation),
        _interpretation(observation),
        day(effective_time),
    ]


def encounter_row(encounter: JsonObject) -> list[str]:
    types = ", ".join(filter(None, (concept_text(t) for t in encounter.get("type") or ())))
    klass = encounter.get("class")
    where = (encounter.get("serviceProvider") or {}).get("display", "")
    return [
        day(encounter_start(encounter)),
        types or (str(klass.get("display", "")) if isinstance(klass, dict) else ""),
        str(where),
        str(encounter.get("status", "")),
    ]


def allergy_row(allergy: JsonObject) -> list[str]:
    code = allergy.get("code")
    first = first_code(code)
    reactions = []
    for reaction in allergy.get("reaction") or ():
        if not isinstance(reaction, dict):
            continue
        shown = ", ".join(
            filter(None, (concept_text(m) for m in reaction.get("manifestation") or ()))
        )
        if shown and reaction.get("severity"):
            shown += f" ({reaction['severity']})"
        if shown:
            reactions.append(shown)
    return [
        concept_text(code),
        first[1] if first else "",
        str(allergy.get("type", "")),
        ", ".join(str(c) for c in allergy.get("category") or ()),
        str(allergy.get("criticality", "")),
        status_code(allergy.get("clinicalStatus")),
        "; ".join(reactions),
        day(allergy.get("onsetDateTime") or allergy.get("onsetString")),
    ]


def immunization_row(immunization: JsonObject) -> list[str]:
    vaccine = immunization.get("vaccineCode")
    first = first_code(vaccine)
    performers = [
        str(p["actor"].get("display", ""))
        for p in immunization.get("performer") or ()
        if isinstance(p, dict) and isinstance(p.get("actor"), dict)
    ]
    return [
        concept_text(vaccine),
        first[1] if first else "",
        day(immunization.get("occurrenceDateTime") or immunization.get("occurrenceString")),
        str(immunization.get("status", "")),
        ", ".join(filter(None, performers)),
    ]


def _displays(references: object) -> str:
    """The displays of a list of References, or of the ``actor`` of each element."""
    shown = []
    for item in references if isinstance(references, list) else [references]:
        if isinstance(item, dict) and isinstance(item.get("actor"), dict):
            item = item["actor"]
        if isinstance(item, dict) and item.get("display"):
            shown.append(str(item["display"]))
    return ", ".join(shown)


def _period(period: object) -> str:
    if not isinstance(period, dict):
        return ""
    start, end = day(period.get("start")), day(period.get("end"))
    return f"{start} to {end}" if end else start


def procedure_row(procedure: JsonObject) -> list[str]:
    code = procedure.get("code")
    first = first_code(code)
    performed = procedure.get("performedDateTime") or (procedure.get("performedPeriod") or {}).get(
        "start"
    )
    return [
        concept_text(code),
        first[1] if first else "",
        day(performed),
        str(procedure.get("status", "")),
        _displays(procedure.get("performer")),
    ]


def care_plan_row(plan: JsonObject) -> list[str]:
    categories = plan.get("category") or []
    activities = [
        str(a["detail"].get("description") or concept_text(a["detail"].get("code")))
        + (f" ({a['detail']['status']})" if a["detail"].get("status") else "")
        for a in plan.get("activity") or ()
        if isinstance(a, dict) and isinstance(a.get("detail"), dict)
    ]
    return [
        str(plan.get("title") or plan.get("description") or ""),
        ", ".join(filter(None, (concept_text(c) for c in categories))),
        str(plan.get("status", "")),
        _period(plan.get("period")),
        "; ".join(activities),
    ]


def alert_row(flag: JsonObject) -> list[str]:
    code = flag.get("code")
    first = first_code(code)
    return [
        concept_text(code),
        first[1] if first else "",
        ", ".join(filter(None, (concept_text(c) for c in flag.get("category") or ()))),
        day((flag.get("period") or {}).get("start")),
        _displays(flag.get("author")),
    ]


def report_row(report: JsonObject) -> list[str]:
    code = report.get("code")
    first = first_code(code)
    performers = [
        str(p.get("display", "")) for p in report.get("performer") or () if isinstance(p, dict)
    ]
    results = [str(r.get("display", "")) for r in report.get("result") or () if isinstance(r, dict)]
    when = effective(report)
    return [
        concept_text(code),
        first[1] if first else "",
        ", ".join(filter(None, performers)),
        str(report.get("conclusion", "")),
        ", ".join(filter(None, results)),
        str(report.get("status", "")),
        when.date().isoformat() if when else "",
    ]
