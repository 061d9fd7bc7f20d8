"""Turn the raw answers of many sources into one record of unified resources.

For every resource: a gateway id that cannot collide between sources, references to
the source's patient pointed at the unified Patient, and ``meta.source`` naming the
source. A resource that does not belong to the source's patient is dropped and the
drop is reported, never passed on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from adapters.base import FhirResource
from fhir_profiles.identifiers import PersonIdentifier
from gateway.aggregate import Gathered, SourceRecord, SourceReport

SOURCE_URI = "urn:samlad:source:"
HSA_SYSTEM = "urn:oid:1.2.752.129.2.1.4.1"
CARE_PROVIDER_TAG = "https://samlad.se/fhir/CodeSystem/care-provider"
CARE_UNIT_TAG = "https://samlad.se/fhir/CodeSystem/care-unit"

#: Fields that name the organisation (care unit) that produced a resource, in order of trust.
UNIT_FIELDS = ("serviceProvider", "performer", "custodian", "author", "requester", "recorder")

#: Where each served type names its patient (FHIRPath-like, top level only).
PATIENT_FIELDS: dict[str, tuple[str, ...]] = {
    "Observation": ("subject",),
    "MedicationRequest": ("subject",),
    "Encounter": ("subject",),
    "Condition": ("subject",),
    "DocumentReference": ("subject",),
    "Appointment": ("participant.actor",),
}


@dataclass(slots=True)
class UnifiedRecord:
    patient: FhirResource
    resources: list[FhirResource]
    reports: list[SourceReport]


def gateway_id(source_id: str, local_id: str) -> str:
    """A FHIR id unique across sources and stable across requests."""
    candidate = f"{source_id}.{local_id}"
    if len(candidate) <= 64:
        return candidate
    digest = hashlib.sha256(local_id.encode()).hexdigest()[: 63 - len(source_id)]
    return f"{source_id}.{digest}"


def _references(node: Any) -> Iterable[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            if isinstance(value, dict | list):
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _patient_refs(resource: FhirResource) -> list[str]:
    refs: list[str] = []
    for path in PATIENT_FIELDS.get(str(resource.get("resourceType")), ()):
        nodes: list[Any] = [resource]
        for part in path.split("."):
            nxt: list[Any] = []
            for node in nodes:
                value = node.get(part) if isinstance(node, dict) else None
                nxt.extend(value if isinstance(value, list) else [value])
            nodes = [n for n in nxt if n is not None]
        refs.extend(
            n["reference"]
            for n in nodes
            if isinstance(n, dict) and isinstance(n.get("reference"), str)
        )
    return refs


def _belongs_to(resource: FhirResource, local_patient: str) -> bool:
    """True when the resource names the source's patient (and no other patient)."""
    refs = [r for r in _patient_refs(resource) if r.split("/")[-2:-1] == ["Patient"]]
    own = f"Patient/{local_patient}"
    return bool(refs) and all(r == own or r.endswith("/" + own) for r in refs)


def _rewrite(resource: FhirResource, record: SourceRecord, patient_id: str) -> None:
    source_id = record.source.id
    local_patient = str(record.patient.get("id"))
    for ref in _references(resource):
        value: str = ref["reference"]
        if value.startswith("#") or "://" in value or value.startswith("urn:"):
            continue
        kind, _, local = value.partition("/")
        if not local or "/" in local:
            continue
        if kind == "Patient" and local == local_patient:
            ref["reference"] = f"Patient/{patient_id}"
        else:
            ref["reference"] = f"{kind}/{gateway_id(source_id, local)}"
    local_id = str(resource.get("id", ""))
    resource["id"] = gateway_id(source_id, local_id)
    meta = resource.get("meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta["source"] = f"{SOURCE_URI}{source_id}#{resource.get('resourceType')}/{local_id}"
    provider = record.source.config.care_provider_hsa_id
    unit = _unit_of(resource, provider)
    tags = [t for t in meta.get("tag", ()) if isinstance(t, dict)]
    tags = [t for t in tags if t.get("system") not in (CARE_PROVIDER_TAG, CARE_UNIT_TAG)]
    if provider:
        tags.append({"system": CARE_PROVIDER_TAG, "code": provider})
    if unit:
        tags.append({"system": CARE_UNIT_TAG, "code": unit})
    if tags:
        meta["tag"] = tags
    resource["meta"] = meta


def _unit_of(resource: FhirResource, provider: str | None) -> str | None:
    """The HSA-id of the care unit named in the resource, if it names one."""
    for name in UNIT_FIELDS:
        value = resource.get(name)
        for ref in value if isinstance(value, list) else [value]:
            identifier = ref.get("identifier") if isinstance(ref, dict) else None
            if (
                isinstance(identifier, dict)
                and identifier.get("system") == HSA_SYSTEM
                and isinstance(identifier.get("value"), str)
                and identifier["value"] != provider
            ):
                return str(identifier["value"])
    return None


def care_tags(resource: FhirResource) -> tuple[str | None, str | None]:
    """(care provider, care unit) HSA-ids recorded on a unified resource."""
    provider = unit = None
    for tag in (resource.get("meta") or {}).get("tag", ()):
        if tag.get("system") == CARE_PROVIDER_TAG:
            provider = tag.get("code")
        elif tag.get("system") == CARE_UNIT_TAG:
            unit = tag.get("code")
    return provider, unit


def unified_patient(
    patient_id: str, person: PersonIdentifier, records: list[SourceRecord]
) -> FhirResource:
    """The one Patient of the overview. Only demographics every principal may see."""
    patient: FhirResource = {
        "resourceType": "Patient",
        "id": patient_id,
        "meta": {"source": f"{SOURCE_URI}gateway"},
        "identifier": [{"system": person.system, "value": person.value}],
        "birthDate": person.birth_date.isoformat(),
    }
    for record in records:
        source = record.patient
        if "name" in source and "name" not in patient:
            patient["name"] = source["name"]
        if "gender" in source and "gender" not in patient:
            patient["gender"] = source["gender"]
    return patient


def unify(gathered: Gathered, person: PersonIdentifier, patient_id: str) -> UnifiedRecord:
    """Build the unified record of ``person`` from what the sources returned."""
    reports = {report.source_id: report for report in gathered.reports}
    resources: list[FhirResource] = []
    for record in gathered.records:
        local_patient = str(record.patient.get("id"))
        foreign = 0
        for resource in record.resources:
            if not _belongs_to(resource, local_patient):
                foreign += 1
                continue
            _rewrite(resource, record, patient_id)
            resources.append(resource)
        report = reports[record.source.id]
        if foreign:
            report.warnings.append(
                f"dropped {foreign} resource(s) that did not belong to the requested patient"
            )
            report.resource_count -= foreign
    return UnifiedRecord(
        patient=unified_patient(patient_id, person, gathered.records),
        resources=resources,
        reports=gathered.reports,
    )
