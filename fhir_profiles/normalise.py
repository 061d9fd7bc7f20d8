"""One call per resource: the normalisation the gateway applies to every resource it serves.

Datetimes of every served type get their UTC offset (:mod:`fhir_profiles.datetimes`).
An Observation is normalised by its profile (:func:`fhir_profiles.resource_types.profile_for`,
chosen by its category): a laboratory result's codes get LOINC beside NPU/local codes and
NPU beside LOINC (:mod:`fhir_profiles.codes`), then its quantities the canonical unit of
the analysis (:mod:`fhir_profiles.units`); a vital sign's quantities, components included,
the unit of the vital sign (:mod:`fhir_profiles.vitals`); an assessment only its codes.
MedicationRequest and MedicationDispense ATC codings get their canonical system.
Everything works in place on the plain JSON dict, never raises on odd input, and reports
what it had to leave or drop in ``issues`` (paths and units, never values).
"""

from __future__ import annotations

from typing import Any

from fhir_profiles.codes import add_canonical_codings, canonicalise_atc
from fhir_profiles.datetimes import normalise_datetimes
from fhir_profiles.resource_types import LAB_OBSERVATION_PROFILE, VITAL_SIGNS_PROFILE, profile_for
from fhir_profiles.units import normalise_quantity
from fhir_profiles.vitals import normalise_vital_sign

#: The types whose ``medicationCodeableConcept`` is a medicine (ATC).
_MEDICATION_TYPES = frozenset({"MedicationRequest", "MedicationDispense"})


def _observation(resource: dict[str, Any], issues: list[str] | None) -> bool:
    code = resource.get("code")
    changed = add_canonical_codings(code) if isinstance(code, dict) else False
    profile = profile_for(resource)
    if profile == LAB_OBSERVATION_PROFILE:
        changed |= normalise_quantity(resource, issues)
    elif profile == VITAL_SIGNS_PROFILE:
        changed |= normalise_vital_sign(resource, issues)
    return changed


def normalise_resource(resource: dict[str, Any], issues: list[str] | None = None) -> bool:
    """Normalise ``resource`` in place (dateTimes, codes, units); True if anything changed."""
    if not isinstance(resource, dict):
        return False
    changed = normalise_datetimes(resource, issues)
    resource_type = resource.get("resourceType")
    if resource_type == "Observation":
        changed |= _observation(resource, issues)
    elif resource_type in _MEDICATION_TYPES:
        medication = resource.get("medicationCodeableConcept")
        if isinstance(medication, dict):
            changed |= canonicalise_atc(medication)
    return changed
