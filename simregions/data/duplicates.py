"""The deliberate duplicates in the test person's record (see the package): the same
lab results and prescription as another region reports them.
"""

from __future__ import annotations

from datetime import datetime

from fhir_profiles.identifiers import HSA_ID_SYSTEM
from simregions.catalog import ATC_SYSTEM, DIAGNOSES, ICD10SE_SYSTEM, MEDICINES
from simregions.clock import local_datetime
from simregions.data.builder import FhirResource, Record, RegionBuilder
from simregions.data.observations import lab_observation
from simregions.labs import ANALYSES_BY_KEY
from simregions.regions import get_region


def plant_duplicates(builder: RegionBuilder, record: Record) -> None:
    region = builder.region.id
    nord = get_region("nord")
    lab = nord.unit("laboratory")
    if region in ("nord", "vast"):
        crp = lab_observation(
            builder,
            record,
            ANALYSES_BY_KEY["crp"],
            12,
            datetime(2026, 9, 14, 8, 12),
            lab,
            effective=local_datetime(datetime(2026, 9, 14, 8, 12)),
        )
        crp["issued"] = "2026-09-14T09:40:00Z"
        crp["meta"]["lastUpdated"] = "2026-09-14T09:40:00Z"
        record.resources.append(crp)
        builder.marked["crp-duplicate"] = crp["id"]
        builder.marked["apixaban-duplicate"] = duplicate_prescription(builder, record)["id"]
    if region in ("nord", "syd"):
        hb = lab_observation(
            builder,
            record,
            ANALYSES_BY_KEY["hb"],
            128,
            datetime(2026, 5, 20, 7, 48),
            lab,
            effective=local_datetime(datetime(2026, 5, 20, 7, 48)),
        )
        hb["issued"] = "2026-05-20T08:31:00Z"
        hb["meta"]["lastUpdated"] = "2026-05-20T08:31:00Z"
        record.resources.append(hb)
        builder.marked["hb-duplicate"] = hb["id"]


def duplicate_prescription(builder: RegionBuilder, record: Record) -> FhirResource:
    medicine = MEDICINES["apixaban"]
    diagnosis = DIAGNOSES["forstadsflimmer"]
    nord = get_region("nord")
    prefix = nord.care_provider_hsa_id.split("-")[0]
    request = builder.resource(
        "MedicationRequest",
        datetime(2026, 6, 2, 10, 30),
        status="active",
        intent="order",
        medicationCodeableConcept={
            "coding": [
                {"system": ATC_SYSTEM, "code": medicine.atc, "display": medicine.atc_display}
            ],
            "text": medicine.product,
        },
        subject=record.patient_ref,
        authoredOn=local_datetime(datetime(2026, 6, 2, 10, 30)),
        # A logical reference: the prescriber is Region Nord's, and both copies must be
        # identical, so neither points at a region-local Practitioner.
        requester={
            "identifier": {"system": HSA_ID_SYSTEM, "value": f"{prefix}-L001"},
            "display": "Karin Lindqvist",
        },
        reasonCode=[
            {
                "coding": [{"system": ICD10SE_SYSTEM, "code": diagnosis.icd10}],
                "text": diagnosis.display,
            }
        ],
        dosageInstruction=[{"text": medicine.dosage}],
        dispenseRequest={
            "validityPeriod": {"start": "2026-06-02", "end": "2027-06-02"},
            "numberOfRepeatsAllowed": 3,
        },
    )
    record.resources.append(request)
    return request
