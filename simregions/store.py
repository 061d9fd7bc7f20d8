"""A region's resources, serialised once and indexed for the searches the region supports.

Each resource is turned into JSON bytes once, so serving a page is concatenating bytes.
The index answers the only questions the routes ask: read by type and id, search a type
(optionally for one patient) filtered by token parameters and ``_lastUpdated``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from simregions.data import (
    PATIENT_COMPARTMENT_TYPES,
    SERVED_TYPES,
    FhirResource,
    RegionData,
    build_region_data,
)
from simregions.regions import RegionSpec

#: Search parameters per resource type and their FHIR search type. The CapabilityStatement is
#: generated from this table, so what a region advertises is what it answers.
SEARCH_PARAMS: dict[str, dict[str, str]] = {
    "Patient": {"_id": "token", "identifier": "token"},
    "Organization": {"_id": "token", "identifier": "token"},
    "Location": {"_id": "token"},
    "Practitioner": {"_id": "token", "identifier": "token"},
    "Observation": {"category": "token", "code": "token", "status": "token"},
    "MedicationRequest": {"status": "token", "code": "token"},
    "Appointment": {"status": "token", "identifier": "token"},
    "Encounter": {"status": "token", "class": "token"},
    "Condition": {"code": "token", "clinical-status": "token", "category": "token"},
    "DocumentReference": {"status": "token", "type": "token"},
    "AllergyIntolerance": {"code": "token", "clinical-status": "token"},
    "Immunization": {"status": "token", "vaccine-code": "token"},
    "Procedure": {"status": "token", "code": "token", "category": "token"},
    "CarePlan": {"status": "token", "category": "token"},
    "CareTeam": {"status": "token", "category": "token"},
    "Flag": {"category": "token"},
    "DiagnosticReport": {"status": "token", "code": "token", "category": "token"},
    "ServiceRequest": {"status": "token", "code": "token", "category": "token", "intent": "token"},
    "MedicationDispense": {"status": "token", "code": "token"},
    # What is written to the region (simregions.writes); Slot is searched by its own route.
    "Schedule": {"_id": "token"},
    "Slot": {"_id": "token", "status": "token"},
    "Task": {"_id": "token", "identifier": "token", "patient": "reference", "status": "token"},
    "Communication": {
        "_id": "token",
        "identifier": "token",
        "patient": "reference",
        "subject": "reference",
    },
}
for _type in PATIENT_COMPARTMENT_TYPES:
    SEARCH_PARAMS[_type] = {"_id": "token", "patient": "reference", "subject": "reference"} | (
        SEARCH_PARAMS[_type]
    )
for _params in SEARCH_PARAMS.values():
    _params["_lastUpdated"] = "date"


@dataclass(frozen=True)
class StoredResource:
    """One resource as served: its JSON bytes plus what searches need to know about it."""

    resource_type: str
    id: str
    patient_id: str | None
    last_updated: datetime
    tokens: Mapping[str, frozenset[str]]
    body: bytes


def _codings(value: Any) -> Iterable[tuple[str, str]]:
    """(system, code) pairs of a CodeableConcept, a list of them, or a bare Coding."""
    if isinstance(value, list):
        for item in value:
            yield from _codings(item)
    elif isinstance(value, dict):
        if "coding" in value:
            yield from _codings(value["coding"])
        elif "code" in value:
            yield value.get("system", ""), value["code"]


def _token_set(pairs: Iterable[tuple[str, str]]) -> frozenset[str]:
    # Store both "system|code" and bare "code" so both search forms hit with a set lookup.
    values: set[str] = set()
    for system, code in pairs:
        values.add(f"{system}|{code}")
        values.add(code)
    return frozenset(values)


def _tokens(resource: FhirResource) -> dict[str, frozenset[str]]:
    tokens = {
        "_id": frozenset({resource["id"]}),
        "identifier": _token_set(
            (item.get("system", ""), item["value"]) for item in resource.get("identifier", [])
        ),
        "code": _token_set(
            _codings(resource.get("code") or resource.get("medicationCodeableConcept"))
        ),
        "category": _token_set(_codings(resource.get("category"))),
        "clinical-status": _token_set(_codings(resource.get("clinicalStatus"))),
        "class": _token_set(_codings(resource.get("class"))),
        "type": _token_set(_codings(resource.get("type"))),
        "vaccine-code": _token_set(_codings(resource.get("vaccineCode"))),
    }
    for name in ("status", "intent"):
        if isinstance(resource.get(name), str):
            tokens[name] = frozenset({resource[name]})
    return {name: values for name, values in tokens.items() if values}


def _patient_id(resource: FhirResource) -> str | None:
    if resource["resourceType"] == "Patient":
        return str(resource["id"])
    references = [
        resource.get("subject", {}).get("reference", ""),
        resource.get("patient", {}).get("reference", ""),
    ]
    references += [p.get("actor", {}).get("reference", "") for p in resource.get("participant", [])]
    for reference in references:
        if reference.startswith("Patient/"):
            return str(reference.removeprefix("Patient/"))
    return None


#: Where a resource says when it happened, in the order looked at.
_WHEN = (
    "effectiveDateTime",
    "issued",
    "authoredOn",
    "date",
    "occurrenceDateTime",
    "onsetDateTime",
    "recordedDate",
    "whenHandedOver",
    "performedDateTime",
    "start",
    "created",
)


def _when(resource: FhirResource) -> str | None:
    for name in _WHEN:
        if isinstance(resource.get(name), str):
            return str(resource[name])
    for name in ("period", "performedPeriod"):
        start = (
            resource.get(name, {}).get("start") if isinstance(resource.get(name), dict) else None
        )
        if isinstance(start, str):
            return start
    return None


def shared(region: RegionSpec, resource: FhirResource) -> bool:
    """Whether ``region`` shares ``resource`` (see ``withholds_labs`` and ``shares_from``)."""
    if region.withholds_labs and resource["resourceType"] in ("Observation", "DiagnosticReport"):
        codes = {code for _, code in _codings(resource.get("category"))}
        if codes & {"laboratory", "LAB"}:
            return False
    limits = dict(region.shares_from)
    limit = limits.get(resource["resourceType"], limits.get("*"))
    when = _when(resource) if limit is not None else None
    return limit is None or when is None or when[:10] >= limit.isoformat()


class RegionStore:
    """Read and search access to one region's resources."""

    def __init__(self, data: RegionData) -> None:
        self.region = data.region
        self.types: tuple[str, ...] = SERVED_TYPES
        self._by_key: dict[tuple[str, str], StoredResource] = {}
        self._by_type: dict[str, list[StoredResource]] = {name: [] for name in SERVED_TYPES}
        self._by_patient: dict[tuple[str, str], list[StoredResource]] = {}
        for resource in data.resources:
            if shared(data.region, resource):
                self._add(resource)

    def _add(self, resource: FhirResource) -> StoredResource:
        stored = StoredResource(
            resource_type=resource["resourceType"],
            id=resource["id"],
            patient_id=_patient_id(resource),
            last_updated=datetime.fromisoformat(resource["meta"]["lastUpdated"]),
            tokens=_tokens(resource),
            body=orjson.dumps(resource),
        )
        self._by_key[(stored.resource_type, stored.id)] = stored
        self._by_type[stored.resource_type].append(stored)
        if stored.patient_id is not None and stored.resource_type != "Patient":
            key = (stored.resource_type, stored.patient_id)
            self._by_patient.setdefault(key, []).append(stored)
        return stored

    def put(self, resource: FhirResource) -> None:
        """Add a resource or replace the one with its type and id: the region's record
        changes (``meta.lastUpdated`` must say when)."""
        old = self._by_key.pop((resource["resourceType"], resource["id"]), None)
        if old is not None:
            self._by_type[old.resource_type].remove(old)
            if old.patient_id is not None and old.resource_type != "Patient":
                self._by_patient.get((old.resource_type, old.patient_id), []).remove(old)
        self._add(resource)

    def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        """The resource with this type and id, or None."""
        return self._by_key.get((resource_type, resource_id))

    def candidates(self, resource_type: str, patient_id: str | None) -> list[StoredResource]:
        """All resources of a type, or only those of one patient, in stable order."""
        if patient_id is None:
            return self._by_type.get(resource_type, [])
        return self._by_patient.get((resource_type, patient_id), [])

    def count(self) -> int:
        """How many resources the region holds."""
        return len(self._by_key)


@functools.cache
def region_store(region: RegionSpec) -> RegionStore:
    """The (cached) store of ``region``."""
    return RegionStore(build_region_data(region))
