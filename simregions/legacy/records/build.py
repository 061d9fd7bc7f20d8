"""Every record of a legacy region, built once (then cached), and its planted
duplicates with the FHIR regions' copies.
"""

from __future__ import annotations

import functools

from simregions.data import build_region_data
from simregions.legacy.records.builder import RecordBuilder
from simregions.legacy.records.model import LegacyDuplicate, LegacyRegionData
from simregions.legacy.records.person import people_in_legacy_region, person_record
from simregions.legacy.spec import LegacyRegionSpec
from simregions.people import all_people
from simregions.regions import get_region


@functools.cache
def build_legacy_data(region: LegacyRegionSpec) -> LegacyRegionData:
    """Build (once, then cached) every record ``region`` holds."""
    builder = RecordBuilder(region)
    position = {person.pnr: index for index, person in enumerate(all_people())}
    records = {
        person.pnr: person_record(builder, person, position[person.pnr])
        for person in people_in_legacy_region(region)
    }
    return LegacyRegionData(
        region=region,
        records=records,
        marked=dict(builder.marked),
        held_back=dict(builder.held_back),
    )


def legacy_duplicates(region: LegacyRegionSpec) -> tuple[LegacyDuplicate, ...]:
    """The planted lab duplicates, with the FHIR regions' (region id, resource id) copies."""
    marked = build_legacy_data(region).marked
    fhir = {rid: build_region_data(get_region(rid)).marked for rid in ("nord", "vast", "syd")}
    return (
        LegacyDuplicate(
            "B-Hb 2026-05-20 07:48, 128 g/L, Klinisk kemi Norrhamn: "
            "NPU in Öst and Syd, LOINC in Nord",
            marked["hb-duplicate"],
            (("nord", fhir["nord"]["hb-duplicate"]), ("syd", fhir["syd"]["hb-duplicate"])),
        ),
        LegacyDuplicate(
            "P-CRP 2026-09-14 08:12, 12 mg/L, Klinisk kemi Norrhamn: "
            "NPU in Öst, LOINC in Nord and Väst",
            marked["crp-duplicate"],
            (("nord", fhir["nord"]["crp-duplicate"]), ("vast", fhir["vast"]["crp-duplicate"])),
        ),
    )
