"""What a simulated region accepts as writes: bookings and cancellations against its
schedules, renewal requests and orders (Task), and messages (Communication), each in the
region's own dialect.

* Region Nord answers a create with 201 and the resource.
* Region Väst answers a booking only after :attr:`RegionWrites.booking_delay` seconds, and
  answers a create with 201 and a ``Location`` only (no body): the caller reads it.
* Region Syd answers with 201 and the resource, its times without a UTC offset.

All honour ``If-None-Exist: identifier=system|value`` (conditional create): what exists
already is answered with 200 and created again never. A booking of a slot that is taken
is 409 with an OperationOutcome (``conflict``). What is written is kept in memory by the
app (a new app starts over) and served by the region's reads and searches, alongside its
generated record (:class:`WritableStore`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from simregions.data import FhirResource
from simregions.fhirhttp import error_response, fhir_response
from simregions.regions import RegionSpec
from simregions.schedules import build_schedules
from simregions.store import RegionStore, StoredResource, _tokens

#: The types a region accepts writes of, beyond its generated record.
WRITTEN_TYPES = ("Schedule", "Slot", "Task", "Communication")
#: How long Region Väst takes to answer a booking by default (seconds).
VAST_BOOKING_DELAY = 0.3


def _patient_of(resource: FhirResource) -> str | None:
    references = [
        (resource.get("for") or {}).get("reference", ""),
        (resource.get("subject") or {}).get("reference", ""),
    ]
    references += [
        (p.get("actor") or {}).get("reference", "") for p in resource.get("participant", [])
    ]
    for reference in references:
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.removeprefix("Patient/")
    return None


def _stored(resource: FhirResource) -> StoredResource:
    return StoredResource(
        resource_type=resource["resourceType"],
        id=resource["id"],
        patient_id=_patient_of(resource),
        last_updated=datetime.fromisoformat(resource["meta"]["lastUpdated"]),
        tokens=_tokens(resource),
        body=orjson.dumps(resource),
    )


class WritableStore:
    """A region's generated record (shared, read-only here) with what was written to
    this app on top: the same questions as :class:`RegionStore` answers."""

    def __init__(self, base: RegionStore) -> None:
        self.base = base
        self.region = base.region
        self.types: tuple[str, ...] = (*base.types, *WRITTEN_TYPES)
        self._written: dict[tuple[str, str], StoredResource] = {}

    def put(self, resource: FhirResource) -> None:
        """Add or replace a written resource."""
        self._written[(resource["resourceType"], resource["id"])] = _stored(resource)

    def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        found = self._written.get((resource_type, resource_id))
        return found if found is not None else self.base.read(resource_type, resource_id)

    def candidates(self, resource_type: str, patient_id: str | None) -> list[StoredResource]:
        base = (
            self.base.candidates(resource_type, patient_id)
            if resource_type in self.base.types
            else []
        )
        written = [
            s
            for (kind, _), s in self._written.items()
            if kind == resource_type and (patient_id is None or s.patient_id == patient_id)
        ]
        replaced = {s.id for s in written}
        return [s for s in base if s.id not in replaced] + written

    def count(self) -> int:
        return self.base.count() + len(self._written)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _conditional(header: str | None) -> tuple[str, str] | None:
    """(system, value) of ``If-None-Exist: identifier=system|value``."""
    if not header or not header.startswith("identifier="):
        return None
    system, bar, value = header.removeprefix("identifier=").partition("|")
    return (system, value) if bar and value else None


class RegionWrites:
    """The writes one region's app accepts (see the module docstring)."""

    def __init__(self, region: RegionSpec, store: WritableStore) -> None:
        self.region = region
        self.store = store
        self.booking_delay = VAST_BOOKING_DELAY if region.id == "vast" else 0.0
        self._numbers = itertools.count(5000)
        #: How many resources each create made (a repeated delivery makes none).
        self.created: dict[str, int] = {}
        self._lock = asyncio.Lock()
        schedules, slots = build_schedules(region)
        for resource in [*schedules, *slots]:
            store.put(resource)

    def _new_id(self, resource_type: str) -> str:
        number = next(self._numbers)
        if self.region.numeric_ids:
            return str(number)
        return f"{resource_type.lower()}-{self.region.id}-{number}"

    def _existing(self, resource_type: str, wanted: tuple[str, str]) -> FhirResource | None:
        for stored in self.store.candidates(resource_type, None):
            resource = orjson.loads(stored.body)
            for identifier in resource.get("identifier", []):
                if (identifier.get("system"), identifier.get("value")) == wanted:
                    return dict(resource)
        return None

    def _answer(self, resource: FhirResource, status: int) -> Any:
        location = f"{resource['resourceType']}/{resource['id']}"
        headers = {"Location": location}
        if self.region.id == "vast":
            return fhir_response(b"", status, headers)
        return fhir_response(resource, status, headers)

    def _slot(self, resource: FhirResource) -> tuple[FhirResource | None, str | None]:
        """The Slot a booking names, or why not."""
        slots = resource.get("slot")
        if not isinstance(slots, list) or len(slots) != 1 or not isinstance(slots[0], dict):
            return None, "an Appointment must name exactly one Slot"
        reference = slots[0].get("reference", "")
        stored = self.store.read("Slot", str(reference).removeprefix("Slot/"))
        if stored is None:
            return None, "no such Slot"
        return dict(orjson.loads(stored.body)), None

    async def create(self, resource_type: str, resource: Any, headers: Mapping[str, str]) -> Any:
        """``POST /fhir/{type}``."""
        if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
            return error_response(400, "invalid", f"the body must be a {resource_type}")
        if resource_type not in ("Appointment", "Task", "Communication"):
            return error_response(405, "not-supported", f"{resource_type} is not writable")
        async with self._lock:
            wanted = _conditional(headers.get("if-none-exist"))
            if wanted is not None:
                found = self._existing(resource_type, wanted)
                if found is not None:
                    return self._answer(found, 200)
            if resource_type == "Appointment":
                slot, problem = self._slot(resource)
                if slot is None:
                    return error_response(422, "processing", problem or "no such Slot")
                if slot["status"] != "free":
                    return error_response(409, "conflict", "the slot is already taken")
                slot["status"] = "busy"
                slot["meta"] = {"lastUpdated": _now()}
                self.store.put(slot)
                resource = resource | {
                    "status": "booked",
                    "start": slot["start"],
                    "end": slot["end"],
                    "participant": [*resource.get("participant", []), self._unit_of(slot)],
                }
            elif resource_type == "Task":
                focus = str((resource.get("focus") or {}).get("reference", ""))
                kind, _, local = focus.partition("/")
                if not local or self.store.read(kind, local) is None:
                    return error_response(422, "processing", "the Task's focus is unknown")
                resource = resource | {"status": "requested"}
            resource = resource | {
                "id": self._new_id(resource_type),
                "meta": {"lastUpdated": _now()},
            }
            self.store.put(resource)
            self.created[resource_type] = self.created.get(resource_type, 0) + 1
        if resource_type == "Appointment" and self.booking_delay:
            await asyncio.sleep(self.booking_delay)
        return self._answer(resource, 201)

    async def update(self, resource_type: str, resource_id: str, resource: Any) -> Any:
        """``PUT /fhir/{type}/{id}``: an Appointment cancelled or moved to another slot."""
        if (
            not isinstance(resource, dict)
            or resource.get("resourceType") != resource_type
            or resource.get("id") != resource_id
        ):
            return error_response(400, "invalid", f"the body must be the {resource_type}")
        if resource_type != "Appointment":
            return error_response(405, "not-supported", f"{resource_type} is not updatable")
        async with self._lock:
            stored = self.store.read(resource_type, resource_id)
            if stored is None:
                return error_response(404, "not-found", "no such Appointment")
            before = orjson.loads(stored.body)
            old = self._slot(before)[0]
            new = self._slot(resource)[0] if resource.get("slot") else None
            moved = new is not None and (old is None or new["id"] != old["id"])
            if moved and new is not None:
                if new["status"] != "free":
                    return error_response(409, "conflict", "the slot is already taken")
                resource = resource | {"start": new["start"], "end": new["end"]}
                self._set_slot(new, "busy")
            if old is not None and (moved or resource.get("status") == "cancelled"):
                self._set_slot(old, "free")
            resource = resource | {"meta": {"lastUpdated": _now()}}
            self.store.put(resource)
        return fhir_response(resource, 200)

    def _unit_of(self, slot: FhirResource) -> FhirResource:
        """The participant naming the unit whose schedule ``slot`` is in."""
        stored = self.store.read("Schedule", slot["schedule"]["reference"].split("/")[-1])
        actor = orjson.loads(stored.body)["actor"][0] if stored is not None else {}
        return {"actor": actor | {"type": "Location"}, "status": "accepted"}

    def _set_slot(self, slot: FhirResource, status: str) -> None:
        self.store.put(slot | {"status": status, "meta": {"lastUpdated": _now()}})

    def set_status(self, resource_type: str, resource_id: str, status: str) -> bool:
        """The region's staff act on a Task (or a message): its status changes."""
        stored = self.store.read(resource_type, resource_id)
        if stored is None:
            return False
        resource = orjson.loads(stored.body)
        self.store.put(resource | {"status": status, "meta": {"lastUpdated": _now()}})
        return True

    def search_slots(self, params: list[tuple[str, str]], base_url: str) -> Any:
        """``GET /fhir/Slot``: ``status``, ``start`` (``ge``/``lt`` prefixes, local
        time), ``service-type`` (text), ``_include=Slot:schedule``; one page."""
        slots = [orjson.loads(s.body) for s in self.store.candidates("Slot", None)]
        include = False
        for name, value in params:
            if name == "_id":
                slots = [s for s in slots if s["id"] in value.split(",")]
            elif name == "status":
                slots = [s for s in slots if s["status"] in value.split(",")]
            elif name == "start":
                slots = [s for s in slots if _starts(s["start"], value)]
            elif name == "service-type":
                slots = [s for s in slots if any(t.get("text") == value for t in s["serviceType"])]
            elif name == "_include" and value == "Slot:schedule":
                include = True
        slots.sort(key=lambda s: (s["start"][:16], s["id"]))
        slots = slots[:100]
        entries = [_entry(base_url, s, "match") for s in slots]
        if include:
            wanted = dict.fromkeys(s["schedule"]["reference"] for s in slots)
            for reference in wanted:
                stored = self.store.read("Schedule", reference.removeprefix("Schedule/"))
                if stored is not None:
                    entries.append(_entry(base_url, orjson.loads(stored.body), "include"))
        return fhir_response(
            {"resourceType": "Bundle", "type": "searchset", "total": len(slots), "entry": entries}
        )


def _entry(base_url: str, resource: FhirResource, mode: str) -> FhirResource:
    return {
        "fullUrl": f"{base_url}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": mode},
    }


def _starts(start: str, value: str) -> bool:
    """Whether ``start`` (local time, to the minute) matches ``value`` (``geX``,
    ``gtX``, ``leX``, ``ltX`` or a bare date)."""
    prefix, moment = value[:2], value[2:]
    if prefix not in ("ge", "gt", "le", "lt", "eq"):
        prefix, moment = "eq", value
    own = start[: len(moment)]
    return {
        "ge": own >= moment,
        "gt": own > moment,
        "le": own <= moment,
        "lt": own < moment,
        "eq": own == moment,
    }[prefix]
