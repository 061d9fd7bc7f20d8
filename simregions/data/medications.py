"""Prescriptions: which medicines (ATC) a diagnosis gets, a MedicationRequest per
prescription, and which of them are still active.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from simregions.catalog import ATC_SYSTEM, ICD10SE_SYSTEM, MEDICINES, Diagnosis, Medicine
from simregions.clock import REFERENCE_DATE
from simregions.data.builder import FhirResource, Record, RegionBuilder, ref


def medicines_for(builder: RegionBuilder, record: Record, diagnosis: Diagnosis) -> list[Medicine]:
    keys = list(diagnosis.medicines)
    child = record.person.age < 13
    # Children get the oral-suspension variants; adults never do.
    keys = [k for k in keys if k.endswith("_barn") == child] or keys
    if not keys:
        return []
    count = len(keys) if record.is_test_person else record.rng.randrange(1, len(keys) + 1)
    return [MEDICINES[key] for key in keys[:count]]


def add_medication_request(
    builder: RegionBuilder,
    record: Record,
    medicine: Medicine,
    diagnosis: Diagnosis,
    practitioner: FhirResource,
    authored: datetime,
) -> FhirResource:
    authored = authored + timedelta(minutes=20)
    valid_days = 365 if medicine.long_term else 30
    request = builder.resource(
        "MedicationRequest",
        authored,
        status="active",
        intent="order",
        medicationCodeableConcept={
            "coding": [
                {"system": ATC_SYSTEM, "code": medicine.atc, "display": medicine.atc_display}
            ],
            "text": medicine.product,
        },
        subject=record.patient_ref,
        authoredOn=builder.when(authored),
        requester=ref(practitioner, practitioner["name"][0]["text"]),
        reasonCode=[
            {
                "coding": [{"system": ICD10SE_SYSTEM, "code": diagnosis.icd10}],
                "text": diagnosis.display,
            }
        ],
        dosageInstruction=[{"text": medicine.dosage}],
        dispenseRequest={
            "validityPeriod": {
                "start": authored.date().isoformat(),
                "end": (authored.date() + timedelta(days=valid_days)).isoformat(),
            },
            "numberOfRepeatsAllowed": 3 if medicine.long_term else 0,
        },
    )
    record.resources.append(request)
    return request


def settle_prescriptions(
    builder: RegionBuilder, prescriptions: list[tuple[Medicine, FhirResource]]
) -> None:
    # Only the newest still-valid prescription of each medicine stays active; renewed or
    # expired ones are completed, as a Swedish prescription list shows them.
    latest: dict[str, FhirResource] = {}
    for medicine, request in prescriptions:
        latest[medicine.key] = request
    for medicine, request in prescriptions:
        end = date.fromisoformat(request["dispenseRequest"]["validityPeriod"]["end"])
        if latest[medicine.key] is not request or end < REFERENCE_DATE:
            request["status"] = "completed"
