"""Appointments: those kept (one per planned contact), future ones booked or cancelled,
and missed ones.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from simregions.catalog import CONTACT_TYPES, ICD10SE_SYSTEM, ContactType, Diagnosis
from simregions.clock import REFERENCE_DATE, local_datetime
from simregions.data.builder import FhirResource, Record, RegionBuilder, ref
from simregions.data.encounters import contact_kind
from simregions.regions import CareUnit


def add_appointment(
    builder: RegionBuilder,
    record: Record,
    diagnosis: Diagnosis | None,
    contact: ContactType,
    unit: CareUnit,
    practitioner: FhirResource,
    start: datetime,
    status: str,
) -> FhirResource:
    rng = record.rng
    created = start - timedelta(days=rng.randrange(10, 60), hours=rng.randrange(1, 6))
    reason = diagnosis.display if diagnosis else "Hälsokontroll"
    body: FhirResource = {
        "status": status,
        "serviceType": [{"text": contact.name}],
        "description": f"{contact.name}: {reason}",
        "start": local_datetime(start),
        "end": local_datetime(start + timedelta(minutes=contact.minutes)),
        "minutesDuration": contact.minutes,
        "created": created.date().isoformat(),
        "participant": [
            {"actor": record.patient_ref, "required": "required", "status": "accepted"},
            {
                "actor": ref(builder.unit_locations[unit.hsa_id], unit.name),
                "required": "required",
                "status": "accepted",
            },
            {"actor": ref(practitioner), "required": "required", "status": "accepted"},
        ],
    }
    if diagnosis:
        body["reasonCode"] = [
            {
                "coding": [{"system": ICD10SE_SYSTEM, "code": diagnosis.icd10}],
                "text": diagnosis.display,
            }
        ]
    if status == "cancelled":
        body["cancelationReason"] = {"text": "Avbokad av patienten"}
    updated = start + timedelta(hours=2) if status in ("fulfilled", "noshow") else created
    appointment = builder.resource("Appointment", updated, **body)
    record.resources.append(appointment)
    return appointment


def add_future_appointment(builder: RegionBuilder, record: Record, diagnosis: Diagnosis) -> None:
    rng = record.rng
    day = REFERENCE_DATE + timedelta(days=rng.randrange(30, 240))
    start = datetime.combine(day, time(rng.randrange(8, 16), rng.choice((0, 20, 40))))
    contact, unit = contact_kind(builder, record, diagnosis, 1)
    if contact.key in ("akut", "slutenvard"):
        contact = CONTACT_TYPES["lakarbesok"]
    status = "cancelled" if rng.random() < 0.1 else "booked"
    practitioner = rng.choice(builder.nurses if contact.key == "sskbesok" else builder.doctors)
    add_appointment(builder, record, diagnosis, contact, unit, practitioner, start, status)


def add_missed_appointment(
    builder: RegionBuilder, record: Record, diagnosis: Diagnosis, near: date
) -> None:
    rng = record.rng
    day = min(near + timedelta(days=rng.randrange(20, 90)), REFERENCE_DATE - timedelta(days=1))
    start = datetime.combine(day, time(rng.randrange(8, 16), 0))
    status = rng.choice(("cancelled", "noshow"))
    contact = CONTACT_TYPES["lakarbesok"]
    if diagnosis.unit_kind == "hospital-clinic":
        unit = builder.unit("hospital-clinic")
    else:
        unit = record.primary_unit
    practitioner = rng.choice(builder.doctors)
    add_appointment(builder, record, diagnosis, contact, unit, practitioner, start, status)
