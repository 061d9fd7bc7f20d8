"""Allergies and intolerances, in SNOMED CT: the test person's, one of each criticality
(penicillin high, birch pollen low, lactose unable to assess), spread over the regions,
and an egg allergy found in infancy for the children born before 2020. Region Nord and
Region Väst both hold the penicillin allergy as the same record (the deliberate duplicate
of the type).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from fhir_profiles.codes import (
    ALLERGY_CLINICAL_SYSTEM,
    ALLERGY_VERIFICATION_SYSTEM,
    SNOMED_SYSTEM,
)
from fhir_profiles.identifiers import HSA_ID_SYSTEM
from simregions.clock import local_datetime
from simregions.data.builder import FhirResource, RegionBuilder, ref
from simregions.regions import get_region


def _concept(code: str, display: str, text: str | None = None) -> FhirResource:
    concept: FhirResource = {
        "coding": [{"system": SNOMED_SYSTEM, "code": code, "display": display}]
    }
    if text:
        concept["text"] = text
    return concept


def _status(system: str, code: str) -> FhirResource:
    return {"coding": [{"system": system, "code": code}]}


def _allergy(
    builder: RegionBuilder, patient: FhirResource, recorded: datetime, **body: Any
) -> FhirResource:
    allergy = builder.resource(
        "AllergyIntolerance",
        recorded,
        clinicalStatus=_status(ALLERGY_CLINICAL_SYSTEM, "active"),
        verificationStatus=_status(ALLERGY_VERIFICATION_SYSTEM, "confirmed"),
        **body,
        patient=patient,
    )
    builder.resources.append(allergy)
    return allergy


def add_allergies(builder: RegionBuilder, patient: FhirResource) -> None:
    """The test person's allergies and intolerances as this region recorded them."""
    region = builder.region.id
    if region in ("nord", "vast"):
        builder.marked["penicillin-duplicate"] = penicillin_allergy(builder, patient)["id"]
    if region == "syd":
        recorded = datetime(2021, 4, 20, 10, 40)
        _allergy(
            builder,
            patient,
            recorded,
            type="allergy",
            category=["environment"],
            criticality="low",
            code=_concept("256915002", "Birch pollen", "Björkpollen"),
            onsetDateTime="1975",
            recordedDate=builder.when(recorded),
            recorder=ref(builder.doctors[0]),
            lastOccurrence=builder.when(datetime(2026, 4, 28, 9, 0)),
            reaction=[
                {
                    "manifestation": [_concept("61582004", "Allergic rhinitis", "Hösnuva")],
                    "severity": "mild",
                    "onset": builder.when(datetime(2026, 4, 28, 9, 0)),
                }
            ],
        )
    if region == "vast":
        recorded = datetime(2022, 2, 8, 14, 5)
        _allergy(
            builder,
            patient,
            recorded,
            type="intolerance",
            category=["food"],
            criticality="unable-to-assess",
            code=_concept("47703008", "Lactose", "Laktos"),
            onsetDateTime=builder.when(datetime(2005, 3, 1, 12, 0)),
            recordedDate=builder.when(recorded),
            recorder=ref(builder.doctors[0]),
            note=[{"text": "Magbesvär efter mjölkprodukter; tål laktosfria produkter."}],
        )


def add_child_allergies(builder: RegionBuilder, patient: FhirResource, born: date) -> None:
    """A child's allergies: an egg allergy found at ten months, for those born before 2020."""
    if born.year >= 2020:
        return
    onset = datetime.combine(born + timedelta(days=300), time(12, 0))
    recorded = onset + timedelta(days=9, hours=-2)
    _allergy(
        builder,
        patient,
        recorded,
        type="allergy",
        category=["food"],
        criticality="low",
        code=_concept("102263004", "Eggs (edible)", "Ägg"),
        onsetDateTime=onset.date().isoformat(),
        recordedDate=builder.when(recorded),
        recorder=ref(builder.doctors[-1]),
        reaction=[
            {
                "manifestation": [_concept("126485001", "Urticaria", "Nässelutslag")],
                "severity": "mild",
                "onset": onset.date().isoformat(),
            }
        ],
    )


def penicillin_allergy(builder: RegionBuilder, patient: FhirResource) -> FhirResource:
    """The penicillin allergy, identical in Nord and Väst but for ids: the recorder is
    Region Nord's doctor, named by HSA-id rather than a region-local Practitioner."""
    prefix = get_region("nord").care_provider_hsa_id.split("-")[0]
    recorded = datetime(2019, 3, 12, 10, 20)
    return _allergy(
        builder,
        patient,
        recorded,
        type="allergy",
        category=["medication"],
        criticality="high",
        code=_concept("764146007", "Penicillin", "Penicillin"),
        onsetDateTime="1968-05-14",
        recordedDate=local_datetime(recorded),
        recorder={
            "identifier": {"system": HSA_ID_SYSTEM, "value": f"{prefix}-L001"},
            "display": "Karin Lindqvist",
        },
        reaction=[
            {
                "manifestation": [_concept("126485001", "Urticaria", "Nässelutslag")],
                "severity": "moderate",
                "onset": "1968-05-14",
            }
        ],
    )
