"""Free times across the sources: a Slot search sent to every source that can write (its
adapter a :class:`adapters.base.WritableSource`), concurrently, each within the request's
deadline, and the Slots and Schedules they answer given gateway ids; and which source and
care unit (HSA-id) own one Slot, which is what a booking is routed by.

Slots and Schedules are about no patient: nobody's record, so nothing is cached; only
the care unit of each Slot a search answered is remembered for a while
(:class:`Schedules`), so that a booking made while its region is down can still be
routed, and queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from adapters.base import FhirResource, supports_writes
from adapters.errors import SourceError
from fhir_profiles.identifiers import HSA_ID_SYSTEM
from gateway.memo import Recent
from gateway.merge.written import from_owner
from gateway.sources import Source

#: The Slot search parameters passed on to the sources.
SLOT_PARAMS = ("status", "start", "service-type")


def writer_of(source: Source) -> object:
    """The adapter that writes to ``source`` (the one under its resilience wrapper:
    writes are retried by the outbox, never repeated blindly)."""
    return getattr(source.adapter, "inner", source.adapter)


@dataclass(frozen=True, slots=True)
class SlotOwner:
    """Which source and care unit own a Slot, and the Slot as the source holds it."""

    source: Source
    local_id: str
    unit_hsa_id: str | None
    slot: FhirResource


def unit_of(schedule: FhirResource) -> str | None:
    """The care unit (HSA-id) a Schedule is for: its actor naming one by identifier."""
    for actor in schedule.get("actor") or ():
        identifier = actor.get("identifier") if isinstance(actor, dict) else None
        if isinstance(identifier, dict) and identifier.get("system") == HSA_ID_SYSTEM:
            value = identifier.get("value")
            return value if isinstance(value, str) and value else None
    return None


#: How long the unit of a Slot a search answered is remembered (seconds).
SLOT_UNITS_FRESH = 6 * 3600.0


class Schedules:
    """Free times across the sources, and the owners of the Slots they answered."""

    def __init__(self, sources: Sequence[Source], fresh_seconds: float = SLOT_UNITS_FRESH):
        self._sources = sources
        self._units: Recent[tuple[str, str], str] = Recent(fresh_seconds, 100_000)

    async def find(
        self, params: Sequence[tuple[str, str]], deadline: float
    ) -> tuple[list[FhirResource], list[FhirResource], list[str]]:
        """Like :func:`find_slots`, remembering each Slot's unit."""
        slots, schedules, missing, units = await find_slots(self._sources, params, deadline)
        for key, unit in units.items():
            self._units.put(key, unit)
        return slots, schedules, missing

    async def owner(self, source: Source, local_id: str) -> SlotOwner | None:
        """Who owns the Slot ``local_id`` of ``source``: remembered from a search, else
        asked of the source (:func:`slot_owner`)."""
        unit = self._units.get((source.id, local_id))
        if unit is not None:
            return SlotOwner(source, local_id, unit, {})
        return await slot_owner(source, local_id)


async def find_slots(
    sources: Sequence[Source], params: Sequence[tuple[str, str]], deadline: float
) -> tuple[list[FhirResource], list[FhirResource], list[str], dict[tuple[str, str], str]]:
    """The Slots and Schedules every writable source answers, the sources that did not
    answer in time (or failed), and the care unit of each Slot by (source, local id)."""
    asked = [s for s in sources if supports_writes(writer_of(s))]

    async def one(source: Source) -> list[FhirResource]:
        adapter = writer_of(source)
        assert supports_writes(adapter)
        return await asyncio.wait_for(adapter.find_slots(params), deadline)

    answers = await asyncio.gather(*(one(s) for s in asked), return_exceptions=True)
    slots: list[FhirResource] = []
    schedules: list[FhirResource] = []
    missing: list[str] = []
    units: dict[tuple[str, str], str] = {}
    for source, answer in zip(asked, answers, strict=True):
        if isinstance(answer, SourceError | TimeoutError):
            missing.append(source.id)
            continue
        if isinstance(answer, BaseException):
            raise answer
        of_schedule = {
            f"Schedule/{r.get('id')}": unit_of(r)
            for r in answer
            if r.get("resourceType") == "Schedule"
        }
        for resource in answer:
            schedule = (resource.get("schedule") or {}).get("reference")
            unit = of_schedule.get(schedule) if isinstance(schedule, str) else None
            if resource.get("resourceType") == "Slot" and unit is not None:
                units[(source.id, str(resource.get("id")))] = unit
            served = from_owner(resource, source.id, "", "")
            if resource.get("resourceType") == "Slot":
                slots.append(served)
            else:
                schedules.append(served)
    slots.sort(key=lambda s: (str(s.get("start", ""))[:16], str(s.get("id"))))
    return slots, schedules, missing, units


async def slot_owner(source: Source, local_id: str) -> SlotOwner | None:
    """The Slot ``local_id`` of ``source`` and the unit its Schedule is for; None if the
    source holds no such Slot. Raises the source's error when it cannot be asked."""
    adapter = writer_of(source)
    if not supports_writes(adapter):
        return None
    found = await adapter.find_slots([("_id", local_id)])
    slot = next((r for r in found if r.get("resourceType") == "Slot"), None)
    if slot is None or slot.get("id") != local_id:
        return None
    schedule = next((r for r in found if r.get("resourceType") == "Schedule"), None)
    unit = unit_of(schedule) if schedule is not None else None
    return SlotOwner(source, local_id, unit, slot)
