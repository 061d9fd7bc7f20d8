"""One region's data while it is being built: resource ids and envelopes, clinical
times in the region's dialect, its care units and the references to them; and one
person's record while it is being built there.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from fhir_profiles.identifiers import HSA_ID_SYSTEM
from simregions.clock import REFERENCE_DATE, local_datetime, utc_instant
from simregions.data.profiles import Profile
from simregions.people import TEST_PERSON_PNR, Person
from simregions.regions import CareUnit, RegionSpec, UnitKind

FhirResource = dict[str, Any]

# Fixed so resource ids are stable across runs and machines.
_ID_NAMESPACE = uuid.UUID("6f1d9a52-3c4b-5e8f-9a01-2b3c4d5e6f70")
_REFERENCE_LOCAL = datetime.combine(REFERENCE_DATE, time(0, 0))


@dataclass
class Record:
    """One person's record while it is being built in one region."""

    person: Person
    index: int
    rng: random.Random
    patient_ref: FhirResource
    profile: Profile
    primary_unit: CareUnit
    resources: list[FhirResource] = field(default_factory=list)
    lab_groups: list[list[FhirResource]] = field(default_factory=list)

    @property
    def is_test_person(self) -> bool:
        return self.person.pnr == TEST_PERSON_PNR


def ref(resource: FhirResource, display: str | None = None) -> FhirResource:
    reference: FhirResource = {"reference": f"{resource['resourceType']}/{resource['id']}"}
    if display:
        reference["display"] = display
    return reference


def unit_reference(org: FhirResource, unit: CareUnit) -> FhirResource:
    # The HSA-id rides along so units can be matched across regions without a lookup.
    return {
        "reference": f"Organization/{org['id']}",
        "identifier": {"system": HSA_ID_SYSTEM, "value": unit.hsa_id},
        "display": unit.name,
    }


def random_day(rng: random.Random, first: date, last: date) -> date:
    if last <= first:
        return first
    return first + timedelta(days=rng.randrange((last - first).days + 1))


class RegionBuilder:
    """One region's resources as they are built, and what later ones refer to."""

    def __init__(self, region: RegionSpec) -> None:
        self.region = region
        self.rng = random.Random(f"region:{region.id}")
        # A separate stream decides which Syd times lose their offset, so that choice does
        # not shift every other random value.
        self.zone_rng = random.Random(f"zones:{region.id}")
        self.seq = 0
        self.resources: list[FhirResource] = []
        self.patient_ids: dict[str, str] = {}
        self.marked: dict[str, str] = {}
        self.unit_orgs: dict[str, FhirResource] = {}
        self.unit_locations: dict[str, FhirResource] = {}
        self.doctors: list[FhirResource] = []
        self.nurses: list[FhirResource] = []

    def new_id(self) -> str:
        self.seq += 1
        if self.region.numeric_ids:
            return str(1000 + self.seq)
        return str(uuid.uuid5(_ID_NAMESPACE, f"{self.region.id}/{self.seq}"))

    def resource(self, resource_type: str, updated: datetime, **body: Any) -> FhirResource:
        updated = min(updated, _REFERENCE_LOCAL - timedelta(minutes=1))
        resource: FhirResource = {
            "resourceType": resource_type,
            "id": self.new_id(),
            "meta": {"versionId": "1", "lastUpdated": utc_instant(updated)},
        }
        resource.update(body)
        return resource

    def when(self, moment: datetime) -> str:
        """A clinical dateTime; Region Syd drops the offset from about half of them."""
        drop = self.region.local_datetimes and self.zone_rng.random() < 0.5
        return local_datetime(moment, with_zone=not drop)

    def unit(self, kind: UnitKind, index: int = 0) -> CareUnit:
        units = [unit for unit in self.region.care_units if unit.kind == kind]
        return units[index % len(units)]

    def unit_ref(self, unit: CareUnit) -> FhirResource:
        return unit_reference(self.unit_orgs[unit.hsa_id], unit)
