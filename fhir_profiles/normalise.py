"""One call per resource: the normalisation the gateway applies to every resource it serves.

Datetimes of every served type get their UTC offset (:mod:`fhir_profiles.datetimes`);
Observation codes get LOINC beside NPU/local codes and NPU beside LOINC
(:mod:`fhir_profiles.codes`), then their quantities the canonical unit
(:mod:`fhir_profiles.units`); MedicationRequest ATC codings their canonical system.
Everything works in place on the plain JSON dict, never raises on odd input, and reports
what it had to leave or drop in ``issues`` (paths and units, never values).
"""

from __future__ import annotations

from typing import Any

from fhir_profiles.codes import add_canonical_codings, canonicalise_atc
from fhir_profiles.datetimes import normalise_datetimes
from fhir_profiles.units import normalise_quantity


def normalise_resource(resource: dict[str, Any], issues: list[str] | None = None) -> bool:
    """Normalise ``resource`` in place (dateTimes, codes, units); True if anything changed."""
    if not isinstance(resource, dict):
        return False
    changed = normalise_datetimes(resource, issues)
    resource_type = resource.get("resourceType")
    if resource_type == "Observation":
        code = resource.get("code")
        if isinstance(code, dict):
            changed |= add_canonical_codings(code)
        changed |= normalise_quantity(resource, issues)
    elif resource_type == "MedicationRequest":
        medication = resource.get("medicationCodeableConcept")
        if isinstance(medication, dict):
            changed |= canonicalise_atc(medication)
    return changed
