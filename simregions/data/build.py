"""Every resource one region serves, built once (then cached), and the planted
duplicates across regions.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from simregions.data.builder import FhirResource, RegionBuilder
from simregions.data.organisations import build_organisations, build_practitioners
from simregions.data.records import build_people
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
)
#: The types searched per patient (``?patient=``).
PATIENT_COMPARTMENT_TYPES: tuple[str, ...] = (
    "Observation",
    "MedicationRequest",
    "Appointment",
    "Encounter",
    "Condition",
    "DocumentReference",
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
    return RegionData(
        region=region,
        resources=tuple(builder.resources),
        patient_ids=dict(builder.patient_ids),
        marked=dict(builder.marked),
    )


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
    )
