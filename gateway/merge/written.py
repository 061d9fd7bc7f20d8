"""A written resource between the gateway's ids and its owner's: references to the
unified Patient become the owner's own Patient, gateway ids of the owner's resources
(``{source}.{local}``) its local ids; and back again for what the owner answers.
"""

from __future__ import annotations

from typing import Any

from adapters.base import FhirResource
from fhir_profiles.identifiers import SOURCE_SYSTEM
from gateway.merge.record import gateway_id


def _walk(value: Any, change: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: change(v) if k == "reference" and isinstance(v, str) else _walk(v, change)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_walk(v, change) for v in value]
    return value


class ForeignReference(ValueError):
    """A written resource names a patient other than its own, or refers by identifier or
    absolute URL (what such a reference names at the owner is not the gateway's to say)."""


def check_references(resource: FhirResource, patient_id: str) -> None:
    """Raise :class:`ForeignReference` unless every Patient ``resource`` names is
    ``Patient/{patient_id}`` and every reference is a literal ``Type/id``; a Reference
    by identifier only for a named type other than Patient (a unit by its HSA-id)."""

    def check(value: Any) -> None:
        if isinstance(value, dict):
            reference = value.get("reference")
            if isinstance(reference, str):
                kind, slash, rid = reference.partition("/")
                if not slash or "/" in rid or ":" in reference or "?" in reference:
                    raise ForeignReference("a reference must be a literal Type/id")
                if kind == "Patient" and rid != patient_id:
                    raise ForeignReference("a write may name its own patient only")
            elif isinstance(value.get("identifier"), dict) and value.get("type") in (
                None,
                "Patient",
            ):
                raise ForeignReference("a Patient may not be referred to by identifier")
            for v in value.values():
                check(v)
        elif isinstance(value, list):
            for v in value:
                check(v)

    check(resource)


def to_owner(
    resource: FhirResource, source_id: str, patient_id: str, local_patient: str
) -> FhirResource:
    """``resource`` as its owner names things (its ``id`` left for the caller); raises
    :class:`ForeignReference` for what :func:`check_references` refuses."""
    prefix = f"{source_id}."
    check_references(resource, patient_id)

    def change(reference: str) -> str:
        kind, _, rid = reference.partition("/")
        if kind == "Patient" and rid == patient_id:
            return f"Patient/{local_patient}"
        if rid.startswith(prefix):
            return f"{kind}/{rid[len(prefix) :]}"
        return reference

    changed: FhirResource = _walk(resource, change)
    changed.pop("meta", None)
    return changed


def from_owner(
    resource: FhirResource, source_id: str, patient_id: str, local_patient: str
) -> FhirResource:
    """What the owner answered, as the gateway serves it."""

    def change(reference: str) -> str:
        kind, slash, rid = reference.partition("/")
        if not slash or "/" in rid or ":" in reference:
            return reference
        if kind == "Patient" and rid == local_patient:
            return f"Patient/{patient_id}"
        return f"{kind}/{gateway_id(source_id, rid)}"

    changed: FhirResource = _walk(resource, change)
    changed["id"] = gateway_id(source_id, str(resource.get("id", "")))
    meta = changed.get("meta")
    changed["meta"] = {
        **(meta if isinstance(meta, dict) else {}),
        "source": f"{SOURCE_SYSTEM}:{source_id}",
    }
    return changed
