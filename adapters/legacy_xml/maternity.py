"""GetMaternityMedicalHistory 2 → Observation: one per value of the antenatal registration
(last menstrual period, expected day of delivery by date and by ultrasound, height,
weight) and of each pregnancy check-up (weeks of gestation, weight, symphysis-fundal
height, haemoglobin, blood pressure as a panel, fetal heart rate), each with its LOINC
code and the national element's name as text.

Height, weight and blood pressure are ``vital-signs``, haemoglobin ``laboratory``, the
rest of the pregnancy's course ``exam``; each also carries the category text
``Mödrahälsovård``. They are effective when the record was written. Units Swedish
records use get their UCUM code; any other unit keeps its text only. Post-delivery
records and the registration's history (earlier pregnancies, diseases, medication) are
not carried.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from adapters.base import FhirResource
from adapters.errors import SourceProtocolError
from adapters.legacy_xml.records import (
    Record,
    decimal_value,
    encounter_reference,
    resource_id,
    unit_reference,
)
from fhir_profiles.codes import LOINC_SYSTEM, OBSERVATION_CATEGORY_SYSTEM, UCUM_SYSTEM

_UCUM = {"cm": "cm", "kg": "kg", "g/L": "g/L", "g/l": "g/L", "mm[Hg]": "mm[Hg]",
         "mmHg": "mm[Hg]", "/min": "/min", "slag/min": "/min", "wk": "wk"}  # fmt: skip
#: Element → (LOINC, its display, the Swedish name, category) of each value carried.
_DATES = (
    ("lastMenstrualPeriod", "8665-2", "Last menstrual period start date",
     "Sista menstruationsdag"),
    ("expectedDayOfDeliveryFromLastMenstrualPeriod", "11779-6",
     "Delivery date Estimated from last menstrual period",
     "Beräknad förlossning enligt sista menstruation"),
    ("expectedDayOfDeliveryFromUltrasoundScan", "11781-6",
     "Delivery date US composite estimate", "Beräknad förlossning enligt ultraljud"),
)  # fmt: skip
_QUANTITIES = (
    ("length", "8302-2", "Body height", "Längd", "vital-signs"),
    ("weight", "29463-7", "Body weight", "Vikt", "vital-signs"),
    ("symphysisFundalHeight", "11881-4", "Uterus Fundal height Tape measure",
     "Symfys-fundusmått", "exam"),
    ("haemoglobin", "718-7", "Hemoglobin [Mass/volume] in Blood", "Hemoglobin", "laboratory"),
    ("fetalHeartRate", "55283-6", "Fetal Heart rate", "Fosterljud", "exam"),
)  # fmt: skip
_CATEGORY_TEXT = "Mödrahälsovård"
#: Makes one Observation: its key within the record, (LOINC, display, name), category.
_Make = Callable[[str, tuple[str, str, str], str], FhirResource]


def maternity_observations(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The Observations of one maternityMedicalRecord."""
    body = record.child("maternityMedicalRecordBody")
    if body is None:
        raise SourceProtocolError(f"{record.what}: record without body")
    document_id = header.required("documentId")
    found: list[FhirResource] = []

    def observation(key: str, code: tuple[str, str, str], category: str) -> FhirResource:
        loinc, display, name = code
        made: FhirResource = {
            "resourceType": "Observation",
            "id": resource_id(ids, "Observation", document_id, key),
            "status": "final",
            "category": [
                {"coding": [{"system": OBSERVATION_CATEGORY_SYSTEM, "code": category}]},
                {"text": _CATEGORY_TEXT},
            ],
            "code": {
                "coding": [{"system": LOINC_SYSTEM, "code": loinc, "display": display}],
                "text": name,
            },
            "subject": subject,
        }
        _add_context(made, header, ids)
        found.append(made)
        return made

    for part in (body.child("registrationRecord"), body.child("pregnancyCheckupRecord")):
        if part is None:
            continue
        for element, loinc, display, name in _DATES:
            value = part.day(element)
            if value is not None:
                observation(element, (loinc, display, name), "exam")["valueDateTime"] = value
        weeks = part.text("completeWeeksOfGestation")
        if weeks is not None:
            made = observation(
                "weeks", ("49051-6", "Gestational age in weeks", "Graviditetsvecka"), "exam"
            )
            made["valueQuantity"] = _quantity(str(decimal_value(weeks, part.what)), "wk", part)
        for element, loinc, display, name, category in _QUANTITIES:
            value_text = part.text(f"{element}/value")
            if value_text is not None:
                made = observation(element, (loinc, display, name), category)
                made["valueQuantity"] = _quantity(value_text, part.text(f"{element}/unit"), part)
        _blood_pressure(part, observation)
    return found


def _blood_pressure(part: Record, observation: _Make) -> None:
    """The systolic and diastolic pressure as one blood pressure panel with components."""
    components = []
    for element, loinc, display in (
        ("bloodPressureSystolic", "8480-6", "Systolic blood pressure"),
        ("bloodPressureDiastolic", "8462-4", "Diastolic blood pressure"),
    ):
        value = part.text(f"{element}/value")
        if value is not None:
            components.append(
                {
                    "code": {
                        "coding": [{"system": LOINC_SYSTEM, "code": loinc, "display": display}]
                    },
                    "valueQuantity": _quantity(value, part.text(f"{element}/unit"), part),
                }
            )
    if components:
        panel = observation(
            "bloodPressure",
            ("85354-9", "Blood pressure panel with all children optional", "Blodtryck"),
            "vital-signs",
        )
        panel["component"] = components


def _quantity(value: str, unit: str | None, part: Record) -> FhirResource:
    quantity: FhirResource = {"value": decimal_value(value, part.what)}
    if unit is not None:
        quantity["unit"] = unit
        if unit in _UCUM:
            quantity["system"] = UCUM_SYSTEM
            quantity["code"] = _UCUM[unit]
    return quantity


def _add_context(observation: FhirResource, header: Record, ids: uuid.UUID) -> None:
    encounter = encounter_reference(header, ids)
    if encounter is not None:
        observation["encounter"] = encounter
    effective = header.when("accountableHealthcareProfessional/authorTime")
    if effective is not None:
        observation["effectiveDateTime"] = effective
    unit = unit_reference(header)
    if unit is not None:
        observation["performer"] = [unit]
