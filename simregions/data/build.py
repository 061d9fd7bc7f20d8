"""Every resource one region serves, built once (then cached), and the planted
duplicates across regions.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from simregions.data.alerts import add_alerts, add_child_alerts
from simregions.data.allergies import add_allergies, add_child_allergies
from simregions.data.builder import FhirResource, RegionBuilder
from simregions.data.care import add_care, add_child_care
from simregions.data.dispenses import add_dispenses
from simregions.data.immunizations import add_childhood_programme, add_immunizations
from simregions.data.organisations import build_organisations, build_practitioners
from simregions.data.records import build_people
from simregions.data.reports import (
    add_answered_consultation,
    add_answered_referral,
    add_child_referral,
    add_lab_reports,
    add_open_referral,
)
from simregions.data.vitals import add_growth, add_vital_signs
from simregions.people import TEST_PERSON_PNR, people_in_region
from simregions.regions import RegionSpec, get_region

#: Every resource type a region serves.
SERVED_TYPES: tuple[str, ...] = (
    "Patient",
    "Organization",
    "Location",
    "Practitioner",
    "Observation",
    "MedicationRequest",
    "Appointment",
    "Encounter",
    "Condition",
    "DocumentReference",
    "AllergyIntolerance",
    "Immunization",
    "Procedure",
    "CarePlan",
    "CareTeam",
    "Flag",
    "DiagnosticReport",
    "ServiceRequest",
    "MedicationDispense",
)
#: The types searched per patient (``?patient=``).
PATIENT_COMPARTMENT_TYPES: tuple[str, ...] = (
    "Observation",
    "MedicationRequest",
    "Appointment",
    "Encounter",
    "Condition",
    "DocumentReference",
    "AllergyIntolerance",
    "Immunization",
    "Procedure",
    "CarePlan",
    "CareTeam",
    "Flag",
    "DiagnosticReport",
    "ServiceRequest",
    "MedicationDispense",
)


@dataclass(frozen=True)
class RegionData:
    """Everything one region serves. Treat the dicts as read-only: they are cached."""

    region: RegionSpec
    resources: tuple[FhirResource, ...]
    patient_ids: Mapping[str, str]
    marked: Mapping[str, str]

    def patient_id(self, pnr: str) -> str | None:
        """The region's local Patient id for canonical number ``pnr``, if the person is here."""
        return self.patient_ids.get(pnr)


@dataclass(frozen=True)
class DeliberateDuplicate:
    """One planted duplicate: the same fact as reported by two regions."""

    resource_type: str
    description: str
    ids: tuple[tuple[str, str], ...]


@functools.cache
def build_region_data(region: RegionSpec) -> RegionData:
    """Build (once, then cached) every resource ``region`` serves."""
    builder = RegionBuilder(region)
    build_organisations(builder)
    build_practitioners(builder)
    build_people(builder)
    build_allergies_and_immunizations(builder)
    build_care_and_alerts(builder)
    build_reports_and_referrals(builder)
    build_measurements_and_dispenses(builder)
    return RegionData(
        region=region,
        resources=tuple(builder.resources),
        patient_ids=dict(builder.patient_ids),
        marked=dict(builder.marked),
    )


def build_allergies_and_immunizations(builder: RegionBuilder) -> None:
    """The test person's allergies and vaccinations, and those of the children under 13
    who live here. Built after everyone's record, so the earlier types keep their ids
    and values."""
    tolvan = builder.patient_ids.get(TEST_PERSON_PNR)
    if tolvan is not None:
        patient = {"reference": f"Patient/{tolvan}"}
        add_allergies(builder, patient)
        add_immunizations(builder, patient)
    for person in people_in_region(builder.region.id):
        if person.age < 13 and person.regions[0] == builder.region.id:
            patient = {"reference": f"Patient/{builder.patient_ids[person.pnr]}"}
            add_child_allergies(builder, patient, person.birth_date)
            add_childhood_programme(builder, patient, person.birth_date)


def build_care_and_alerts(builder: RegionBuilder) -> None:
    """The test person's procedures, care plans, care teams and alert flags, and those of
    the children under 13 who live here. Built after everything else, so the earlier
    types keep their ids and values."""
    tolvan = builder.patient_ids.get(TEST_PERSON_PNR)
    if tolvan is not None:
        patient = {"reference": f"Patient/{tolvan}"}
        add_care(builder, patient)
        add_alerts(builder, patient)
    for person in people_in_region(builder.region.id):
        if person.age < 13 and person.regions[0] == builder.region.id:
            patient = {"reference": f"Patient/{builder.patient_ids[person.pnr]}"}
            add_child_care(builder, patient, person.birth_date)
            add_child_alerts(builder, patient, person.birth_date)


def build_reports_and_referrals(builder: RegionBuilder) -> None:
    """The test person's lab reports here; a referral answered with an X-ray report in
    Region Nord, one answered by the clinic in Region Syd, one not yet answered in Region
    Väst; each child's referral for a hearing assessment and its answer. Built last, so the
    earlier types keep their ids and values."""
    tolvan = builder.patient_ids.get(TEST_PERSON_PNR)
    if tolvan is not None:
        patient = {"reference": f"Patient/{tolvan}"}
        add_lab_reports(builder, patient)
        if builder.region.id == "nord":
            add_answered_referral(builder, patient)
        if builder.region.id == "vast":
            add_open_referral(builder, patient)
        if builder.region.id == "syd":
            add_answered_consultation(builder, patient)
    for person in people_in_region(builder.region.id):
        if person.age < 13 and person.regions[0] == builder.region.id:
            patient = {"reference": f"Patient/{builder.patient_ids[person.pnr]}"}
            add_child_referral(builder, patient, person.birth_date)


def build_measurements_and_dispenses(builder: RegionBuilder) -> None:
    """The test person's vital signs, assessments and dispensed medicines, and the growth
    and dispensed medicines of the children under 13 who live here. Built after every
    other type, so those keep their ids and values."""
    tolvan = builder.patient_ids.get(TEST_PERSON_PNR)
    if tolvan is not None:
        patient = {"reference": f"Patient/{tolvan}"}
        add_vital_signs(builder, patient)
        add_dispenses(builder, patient)
    for person in people_in_region(builder.region.id):
        if person.age < 13 and person.regions[0] == builder.region.id:
            patient = {"reference": f"Patient/{builder.patient_ids[person.pnr]}"}
            add_growth(builder, patient, person)
            add_dispenses(builder, patient, since=date.min)


def deliberate_duplicates() -> tuple[DeliberateDuplicate, ...]:
    """The planted duplicates, with each copy's (region id, resource id)."""
    data = {
        region_id: build_region_data(get_region(region_id)) for region_id in ("nord", "vast", "syd")
    }

    def ids(marker: str, *regions: str) -> tuple[tuple[str, str], ...]:
        return tuple((region, data[region].marked[marker]) for region in regions)

    return (
        DeliberateDuplicate(
            "Observation",
            "P-CRP 2026-09-14 from Klinisk kemi Norrhamn, identical in Nord and Väst",
            ids("crp-duplicate", "nord", "vast"),
        ),
        DeliberateDuplicate(
            "MedicationRequest",
            "Eliquis prescription of 2026-06-02, identical in Nord and Väst",
            ids("apixaban-duplicate", "nord", "vast"),
        ),
        DeliberateDuplicate(
            "Observation",
            "B-Hb 2026-05-20 from Klinisk kemi Norrhamn: LOINC in Nord, NPU in Syd",
            ids("hb-duplicate", "nord", "syd"),
        ),
        DeliberateDuplicate(
            "AllergyIntolerance",
            "penicillin allergy recorded 2019-03-12, identical in Nord and Väst",
            ids("penicillin-duplicate", "nord", "vast"),
        ),
        DeliberateDuplicate(
            "Immunization",
            "influenza vaccination of 2024-10-21, identical in Nord and Väst",
            ids("influenza-duplicate", "nord", "vast"),
        ),
        DeliberateDuplicate(
            "Procedure",
            "electrical cardioversion of 2025-11-04, identical in Nord and Väst",
            ids("cardioversion-duplicate", "nord", "vast"),
        ),
        DeliberateDuplicate(
            "Flag",
            "anticoagulant treatment alert since 2026-06-02, identical in Nord and Väst",
            ids("anticoagulant-duplicate", "nord", "vast"),
        ),
        DeliberateDuplicate(
            "DiagnosticReport",
            "the report of the B-Hb of 2026-05-20 (Blodstatus), in Nord and Syd",
            ids("hb-report-duplicate", "nord", "syd"),
        ),
        DeliberateDuplicate(
            "DiagnosticReport",
            "the report of the P-CRP of 2026-09-14, identical in Nord and Väst",
            ids("crp-report-duplicate", "nord", "vast"),
        ),
        DeliberateDuplicate(
            "Observation",
            "blood pressure of 2024-03-05 at Vårdcentralen Norrby, identical in Nord and Väst",
            ids("bp-duplicate", "nord", "vast"),
        ),
        DeliberateDuplicate(
            "MedicationDispense",
            "Eliquis dispensed 2026-06-03 on the prescription of 2026-06-02, in Nord and Väst",
            ids("apixaban-dispense-duplicate", "nord", "vast"),
        ),
    )
