"""Patient linking: which source Patients are the person asked about, and the unified Patient.

A source's Patient is linked only when it carries a valid identity number (in any form
and system the identifier module knows) equal to the one asked about, and no other.
An invalid, missing or different number means the source's answer is not merged: it
is reported, never guessed.

Protected identity (skyddad identitet) is a ``R`` (restricted) confidentiality label on
any source Patient; the unified Patient then carries the label and no address or
contact details, whoever asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.base import FhirResource
from fhir_profiles.identifiers import (
    InvalidPersonIdentifier,
    PersonIdentifier,
    canonical_identifier,
)

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
RESTRICTED = {"R", "V"}
SOURCE_URI = "urn:samlad:source:"


class LinkError(ValueError):
    """The source Patient cannot be linked to the person; the message is safe to show."""


def check_link(patient: FhirResource, person: PersonIdentifier) -> None:
    """Raise :class:`LinkError` unless ``patient`` identifies exactly ``person``."""
    identifiers = patient.get("identifier")
    found: set[str] = set()
    invalid = 0
    for identifier in identifiers if isinstance(identifiers, list) else []:
        if not isinstance(identifier, dict):
            continue
        system, value = identifier.get("system"), identifier.get("value")
        if not isinstance(system, str) or not isinstance(value, str):
            continue
        try:
            parsed = canonical_identifier(system, value)
        except InvalidPersonIdentifier:
            invalid += 1
            continue
        if parsed is not None:
            found.add(parsed.value)
    if not found:
        reason = "invalid" if invalid else "missing"
        raise LinkError(f"the source's Patient has a {reason} identity number: not merged")
    if found != {person.value}:
        raise LinkError("the source's Patient names another identity number: not merged")


def is_protected(patient: FhirResource) -> bool:
    """True if the source marks the person's identity as protected."""
    security = (patient.get("meta") or {}).get("security")
    for label in security if isinstance(security, list) else []:
        if (
            isinstance(label, dict)
            and label.get("system") == CONFIDENTIALITY
            and label.get("code") in RESTRICTED
        ):
            return True
    return False


def unified_patient(
    patient_id: str,
    person: PersonIdentifier,
    sources: Sequence[FhirResource],
    protected_by: Sequence[FhirResource] | None = None,
) -> FhirResource:
    """The one Patient of the overview, from the linked source Patients (in source order).

    ``protected_by``: every linked source Patient, when ``sources`` are only those that
    may be shown; a protected identity marked by any of them is honoured.
    """
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_id,
        "meta": {"source": f"{SOURCE_URI}gateway"},
        "identifier": [{"system": person.system, "value": person.value}],
        "birthDate": person.birth_date.isoformat(),
    }
    protected = any(
        is_protected(source) for source in (sources if protected_by is None else protected_by)
    )
    fields = ("name", "gender") if protected else ("name", "gender", "telecom", "address")
    for source in sources:
        for field in fields:
            if field in source and field not in patient:
                patient[field] = source[field]
    if protected:
        patient["meta"]["security"] = [
            {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"}
        ]
    return patient
