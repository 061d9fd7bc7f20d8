"""Conditions: a diagnosis (ICD-10-SE) on the problem list, or as the reason for one
contact.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from simregions.catalog import ICD10SE_SYSTEM, Diagnosis
from simregions.clock import local_datetime
from simregions.data.builder import FhirResource, Record, RegionBuilder, ref

CONDITION_CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-category"


def add_condition(
    builder: RegionBuilder, record: Record, diagnosis: Diagnosis, onset: date, recorded: date
) -> FhirResource:
    rng = record.rng
    recorded_at = datetime.combine(recorded, time(rng.randrange(8, 17), rng.randrange(60)))
    body: FhirResource = {
        "clinicalStatus": {
            "coding": [
                {
                    "system": CONDITION_CLINICAL_SYSTEM,
                    "code": "active" if diagnosis.chronic else "resolved",
                }
            ]
        },
        "verificationStatus": {
            "coding": [{"system": CONDITION_VERIFICATION_SYSTEM, "code": "confirmed"}]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": CONDITION_CATEGORY_SYSTEM,
                        "code": "problem-list-item" if diagnosis.chronic else "encounter-diagnosis",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": ICD10SE_SYSTEM,
                    "code": diagnosis.icd10,
                    "display": diagnosis.display,
                }
            ],
            "text": diagnosis.display,
        },
        "subject": record.patient_ref,
        "onsetDateTime": builder.when(datetime.combine(onset, time(12, 0))),
        "recordedDate": local_datetime(recorded_at),
        "recorder": ref(rng.choice(builder.doctors)),
    }
    if not diagnosis.chronic:
        body["abatementDateTime"] = local_datetime(recorded_at + timedelta(days=14))
    condition = builder.resource("Condition", recorded_at + timedelta(hours=1), **body)
    record.resources.append(condition)
    return condition
