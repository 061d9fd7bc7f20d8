"""Care contacts: which kind of contact a diagnosis gets at which unit, and the
Encounter of each one held.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from simregions.catalog import (
    ACT_CODE_SYSTEM,
    CONTACT_TYPES,
    ICD10SE_SYSTEM,
    ContactType,
    Diagnosis,
)
from simregions.data.builder import FhirResource, Record, RegionBuilder, ref
from simregions.regions import CareUnit


def contact_kind(
    builder: RegionBuilder, record: Record, diagnosis: Diagnosis, number: int
) -> tuple[ContactType, CareUnit]:
    rng, kind = record.rng, diagnosis.unit_kind
    if kind == "paediatric" and record.person.age >= 18:
        kind = "primary-care"
    if kind == "emergency":
        return CONTACT_TYPES["akut"], builder.unit("emergency")
    if kind == "hospital-clinic":
        if diagnosis.key == "hjartsvikt" and number == 0 and record.is_test_person:
            return CONTACT_TYPES["slutenvard"], builder.unit("hospital-clinic")
        key = "lakarbesok" if number == 0 or rng.random() < 0.6 else "sskbesok"
        return CONTACT_TYPES[key], builder.unit("hospital-clinic")
    if kind == "paediatric":
        return CONTACT_TYPES["lakarbesok"], builder.unit("paediatric")
    if number == 0:
        return CONTACT_TYPES["lakarbesok"], record.primary_unit
    key = rng.choice(("lakarbesok", "lakarbesok", "sskbesok", "telefon", "video"))
    return CONTACT_TYPES[key], record.primary_unit


def add_encounter(
    builder: RegionBuilder,
    record: Record,
    diagnosis: Diagnosis | None,
    contact: ContactType,
    unit: CareUnit,
    practitioner: FhirResource,
    start: datetime,
    condition: FhirResource | None,
    appointment: FhirResource | None,
) -> FhirResource:
    end = start + timedelta(minutes=contact.minutes)
    body: FhirResource = {
        "status": "finished",
        "class": {
            "system": ACT_CODE_SYSTEM,
            "code": contact.act_code,
            "display": contact.act_display,
        },
        "type": [{"text": contact.name}],
        "subject": record.patient_ref,
        "participant": [{"individual": ref(practitioner)}],
        "period": {"start": builder.when(start), "end": builder.when(end)},
    }
    if appointment is not None:
        body["appointment"] = [ref(appointment)]
    if diagnosis is not None:
        body["reasonCode"] = [
            {
                "coding": [
                    {
                        "system": ICD10SE_SYSTEM,
                        "code": diagnosis.icd10,
                        "display": diagnosis.display,
                    }
                ],
                "text": diagnosis.display,
            }
        ]
    if condition is not None:
        body["diagnosis"] = [{"condition": ref(condition), "rank": 1}]
    body["location"] = [{"location": ref(builder.unit_locations[unit.hsa_id], unit.name)}]
    body["serviceProvider"] = builder.unit_ref(unit)
    encounter = builder.resource("Encounter", end + timedelta(hours=1), **body)
    record.resources.append(encounter)
    return encounter
