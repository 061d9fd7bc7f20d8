"""The schedules of a region's care units: a Schedule per bookable unit and free Slots
on its working days, fixed relative to the simulation's reference date (never today).

Each Schedule names its unit by HSA-id (``actor`` is a logical reference to the
Organization), which is what the gateway routes a booking by.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from fhir_profiles.identifiers import HSA_ID_SYSTEM
from simregions.clock import REFERENCE_DATE, local_datetime
from simregions.data import FhirResource
from simregions.regions import RegionSpec

#: How many days of times each unit offers, from the day after the reference date.
DAYS = 14
#: The kinds of visit a unit's times are for (``Slot.serviceType.text``), by unit kind.
SERVICES = {
    "primary-care": ("Läkarbesök", "Sjuksköterskebesök"),
    "hospital-clinic": ("Läkarbesök",),
}
#: Each working day's times: 08:00 to 15:30, every half hour (08:00-11:30 and 13:00-15:30).
TIMES = [time(h, m) for h in (8, 9, 10, 11, 13, 14, 15) for m in (0, 30)]
MINUTES = 30


def _slot_id(region: RegionSpec, number: int, unit_key: str, start: datetime) -> str:
    """Region Väst numbers everything; the others write readable ids."""
    if region.numeric_ids:
        return str(900000 + number)
    return f"slot-{unit_key}-{start:%Y%m%d%H%M}"


def build_schedules(region: RegionSpec) -> tuple[list[FhirResource], list[FhirResource]]:
    """The region's Schedules and Slots (all free)."""
    schedules: list[FhirResource] = []
    slots: list[FhirResource] = []
    stamp = local_datetime(datetime.combine(REFERENCE_DATE, time(6, 0)))
    number = 0
    for unit in region.care_units:
        services = SERVICES.get(unit.kind)
        if services is None:
            continue
        schedule_id = (
            f"schedule-{unit.key}" if not region.numeric_ids else str(800 + len(schedules))
        )
        schedules.append(
            {
                "resourceType": "Schedule",
                "id": schedule_id,
                "meta": {"lastUpdated": stamp},
                "active": True,
                "serviceType": [{"text": s} for s in services],
                "actor": [
                    {
                        "type": "Organization",
                        "identifier": {"system": HSA_ID_SYSTEM, "value": unit.hsa_id},
                        "display": unit.name,
                    }
                ],
            }
        )
        for day in range(1, DAYS + 1):
            date = REFERENCE_DATE + timedelta(days=day)
            if date.weekday() >= 5:
                continue
            for index, moment in enumerate(TIMES):
                start = datetime.combine(date, moment)
                service = services[index % len(services)]
                number += 1
                slots.append(
                    {
                        "resourceType": "Slot",
                        "id": _slot_id(region, number, unit.key, start),
                        "meta": {"lastUpdated": stamp},
                        "schedule": {"reference": f"Schedule/{schedule_id}"},
                        "serviceType": [{"text": service}],
                        "status": "free",
                        "start": local_datetime(start, with_zone=not region.local_datetimes),
                        "end": local_datetime(
                            start + timedelta(minutes=MINUTES),
                            with_zone=not region.local_datetimes,
                        ),
                    }
                )
    return schedules, slots
