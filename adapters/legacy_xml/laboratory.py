"""GetLaboratoryOrderOutcome 4 → Observation: one per analysis, with its NPU (or other)
code, value, unit, reference interval and flag; and → DiagnosticReport: one per order,
grouping its Observations in ``result`` (LOINC 11502-2 Laboratory report, category
``LAB``).

A value is a number, optionally with a comparator (``<5``); a decimal comma is read as a
point. A unit Swedish labs print is given its UCUM code when it has one; any other unit
keeps its text without a code.
"""

from __future__ import annotations

import re
import uuid

from adapters.base import FhirResource
from adapters.errors import SourceProtocolError
from adapters.legacy_xml.records import UNIT, Record, hsa_reference, resource_id
from fhir_profiles.codes import (
    DIAGNOSTIC_SERVICE_SECTION_SYSTEM,
    INTERPRETATION_SYSTEM,
    LOINC_SYSTEM,
    OBSERVATION_CATEGORY_SYSTEM,
    UCUM_SYSTEM,
)

#: Units as Swedish labs print them → UCUM code. Unknown units keep their text, no code.
_UCUM = {
    "g/L": "g/L", "g/l": "g/L", "mmol/L": "mmol/L", "mmol/l": "mmol/L",
    "µmol/L": "umol/L", "umol/L": "umol/L", "μmol/L": "umol/L", "nmol/L": "nmol/L",
    "pmol/L": "pmol/L", "µkat/L": "ukat/L", "ukat/L": "ukat/L", "μkat/L": "ukat/L",
    "10^9/L": "10*9/L", "10^12/L": "10*12/L", "L/L": "L/L", "fL": "fL", "mg/L": "mg/L",
    "mmol/mol": "mmol/mol", "µg/L": "ug/L", "ug/L": "ug/L", "μg/L": "ug/L", "ng/L": "ng/L",
    "mIE/L": "m[IU]/L", "mIU/L": "m[IU]/L", "INR": "{INR}", "mL/min/1,73 m²": "mL/min/{1.73_m2}",
    "mg/dL": "mg/dL", "g/dL": "g/dL", "U/L": "U/L", "%": "%",
}  # fmt: skip
_NUMBER = re.compile(r"^(?P<cmp>[<>]=?)?\s*(?P<num>-?\d{1,15}(?:[.,]\d{1,15})?)$")


def observations(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """One Observation per analysis of a laboratoryOrderOutcome record."""
    what = record.what
    body = record.child("laboratoryOrderOutcomeBody")
    if body is None:
        raise SourceProtocolError(f"{what}: record without body")
    document_id = header.required("documentId")
    status = "final" if body.text("resultType") == "DEF" else "preliminary"
    issued = body.when("registrationTime")
    unit = header.child("accountableHealthcareProfessional/healthcareProfessionalOrgUnit")
    performer = None
    if unit is not None:
        performer = hsa_reference(
            unit.required("orgUnitHSAId"), unit.text("orgUnitName"), kind=UNIT
        )
    found = []
    for analysis in body.children("analysis"):
        analysis_id = analysis.required("analysisId")
        coding = analysis.coding("analysisCode")
        if coding is None:
            raise SourceProtocolError(f"{what}: analysis without analysisCode")
        code: FhirResource = {"coding": [coding]}
        name = analysis.text("analysisText")
        if name is not None:
            code["text"] = name
        observation: FhirResource = {
            "resourceType": "Observation",
            "id": resource_id(ids, "Observation", document_id, analysis_id),
            "status": status,
            "category": [
                {
                    "coding": [
                        {
                            "system": OBSERVATION_CATEGORY_SYSTEM,
                            "code": "laboratory",
                            "display": "Laboratory",
                        }
                    ]
                }
            ],
            "code": code,
            "subject": subject,
        }
        effective = analysis.when("analysisTime/start")
        if effective is not None:
            observation["effectiveDateTime"] = effective
        if issued is not None:
            observation["issued"] = issued
        if performer is not None:
            observation["performer"] = [performer]
        outcome = analysis.child("analysisOutcome")
        if outcome is not None:
            _add_outcome(observation, outcome)
        found.append(observation)
    return found


def lab_reports(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The DiagnosticReport of one laboratoryOrderOutcome record: its analyses' Observations
    (the ids :func:`observations` gives them) in ``result``."""
    found = observations(record, header, subject, ids)
    if not found:
        return []  # an order without analyses reports nothing
    body = record.child("laboratoryOrderOutcomeBody")
    assert body is not None  # observations() refused a record without one
    report: FhirResource = {
        "resourceType": "DiagnosticReport",
        "id": resource_id(ids, "DiagnosticReport", header.required("documentId")),
        "status": "final" if body.text("resultType") == "DEF" else "preliminary",
        "category": [
            {
                "coding": [
                    {
                        "system": DIAGNOSTIC_SERVICE_SECTION_SYSTEM,
                        "code": "LAB",
                        "display": "Laboratory",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": LOINC_SYSTEM, "code": "11502-2", "display": "Laboratory report"}],
            "text": "Laboratoriesvar",
        },
        "subject": subject,
    }
    sampled = sorted(o["effectiveDateTime"] for o in found if "effectiveDateTime" in o)
    if sampled:
        report["effectiveDateTime"] = sampled[0]
    issued = body.when("registrationTime")
    if issued is not None:
        report["issued"] = issued
    if "performer" in found[0]:
        report["performer"] = found[0]["performer"]
    report["result"] = [_result(observation) for observation in found]
    return [report]


def _result(observation: FhirResource) -> FhirResource:
    reference: FhirResource = {"reference": f"Observation/{observation['id']}"}
    if "text" in observation["code"]:
        reference["display"] = observation["code"]["text"]
    return reference


def _add_outcome(observation: FhirResource, outcome: Record) -> None:
    what = outcome.what
    unit = outcome.text("outcomeUnit")
    raw = outcome.text("outcomeValue")
    if raw is not None:
        comparator, value = _number(raw, what)
        quantity = _quantity(value, unit)
        if comparator is not None:
            quantity = {"value": value, "comparator": comparator, **quantity}
        observation["valueQuantity"] = quantity
    interval = outcome.child("referenceInterval")
    low = high = None
    if interval is not None:
        low_text, high_text = interval.text("low"), interval.text("high")
        low = _number(low_text, what)[1] if low_text is not None else None
        high = _number(high_text, what)[1] if high_text is not None else None
    flagged = outcome.text("pathologicalFlag") == "true"
    if flagged and raw is not None:
        value = observation["valueQuantity"]["value"]
        if high is not None and value > high:
            flag = ("H", "High")
        elif low is not None and value < low:
            flag = ("L", "Low")
        else:
            flag = ("A", "Abnormal")
        observation["interpretation"] = [
            {"coding": [{"system": INTERPRETATION_SYSTEM, "code": flag[0], "display": flag[1]}]}
        ]
    if low is not None or high is not None:
        shown = unit or ""
        reference: FhirResource = {}
        if low is not None:
            reference["low"] = _quantity(low, unit)
        if high is not None:
            reference["high"] = _quantity(high, unit)
        if low is not None and high is not None:
            reference["text"] = f"{low}-{high} {shown}".strip()
        elif high is not None:
            reference["text"] = f"<{high} {shown}".strip()
        else:
            reference["text"] = f">{low} {shown}".strip()
        observation["referenceRange"] = [reference]


def _number(text: str, what: str) -> tuple[str | None, int | float]:
    match = _NUMBER.match(text.strip())
    if match is None:
        raise SourceProtocolError(f"{what}: value is not a number")
    number = match["num"].replace(",", ".")
    value: int | float = float(number) if "." in number else int(number)
    return match["cmp"], value


def _quantity(value: int | float, unit: str | None) -> FhirResource:
    quantity: FhirResource = {"value": value}
    if unit:
        quantity["unit"] = unit
        code = _UCUM.get(unit)
        if code is not None:
            quantity["system"] = UCUM_SYSTEM
            quantity["code"] = code
    return quantity
