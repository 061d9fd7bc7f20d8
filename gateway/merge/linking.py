"""Patient linking: which source Patients are the person asked about, and the unified Patient.

A source's Patient is linked only when it carries a valid identity number (in any form
and system the identifier module knows) equal to the one asked about, and no other.
An invalid, missing or different number means the source's answer is not merged: it
is reported, never guessed.

Where linked Patients disagree on name, sex, birth date or protected identity, the
unified Patient follows the rule of :mod:`fhir_profiles.demographics` and records the
disagreement. Protected identity (skyddad identitet) is a ``R`` (restricted)
confidentiality label on any source Patient; the unified Patient then carries the label
and no address or contact details, whoever asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.base import FhirResource
from fhir_profiles.demographics import (
    CONFIDENTIALITY,
    SourcePatient,
    conflict_extension,
    decide,
    is_protected,
)
from fhir_profiles.identifiers import (
    SOURCE_URI,
    InvalidPersonIdentifier,
    PersonIdentifier,
    canonical_identifier,
)

__all__ = [
    "CONFIDENTIALITY",
    "LinkError",
    "check_link",
    "is_protected",
    "unified_patient",
]


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


def unified_patient(
    patient_id: str,
    person: PersonIdentifier,
    sources: Sequence[SourcePatient],
    protected_by: Sequence[SourcePatient] | None = None,
) -> FhirResource:
    """The one Patient of the overview, from the linked source Patients (in source order),
    by the demographic rule of :func:`fhir_profiles.demographics.decide`.

    ``protected_by``: every linked source Patient, when ``sources`` are only those that
    may be shown; a protected identity marked by any of them is honoured. Each
    disagreement between ``sources`` is recorded as a ``demographic-conflict`` extension.
    """
    decided = decide(person, sources, protected_by)
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_id,
        "meta": {"source": f"{SOURCE_URI}gateway"},
        "identifier": [{"system": person.system, "value": person.value}],
    }
    if decided.conflicts:
        patient["extension"] = [conflict_extension(c) for c in decided.conflicts]
    for element, value in (
        ("name", decided.name),
        ("telecom", decided.telecom),
        ("gender", decided.gender),
        ("birthDate", decided.birth_date),
        ("address", decided.address),
    ):
        if value is not None:
            patient[element] = value
    if decided.protected:
        patient["meta"]["security"] = [
            {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"}
        ]
    return patient
