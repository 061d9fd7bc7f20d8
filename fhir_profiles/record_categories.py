"""The categories of a person's record a proxy grant may be limited to.

A proxy grant (a Consent with an ``HPOWATT`` actor) names in ``provision.class`` what it
covers: FHIR resource types (``http://hl7.org/fhir/resource-types``) or these categories
(:data:`~fhir_profiles.codes.RECORD_CATEGORY_SYSTEM`), each a set of resource types and,
for Observations, the Observation categories it takes (lab results are the laboratory
Observations, not vital signs). The Patient itself is always covered: a record is read
through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class RecordCategory:
    """One category: its resource types and, if it takes Observations, which categories
    of them (``observation-category`` codes); None takes every Observation."""

    types: frozenset[str]
    observation_categories: frozenset[str] | None = None


#: The categories, by code (a Swedish display for the web app is its own business).
RECORD_CATEGORIES: Mapping[str, RecordCategory] = MappingProxyType(
    {
        "medicines": RecordCategory(frozenset({"MedicationRequest", "MedicationDispense"})),
        "lab-results": RecordCategory(
            frozenset({"Observation", "DiagnosticReport"}), frozenset({"laboratory"})
        ),
        "vital-signs": RecordCategory(frozenset({"Observation"}), frozenset({"vital-signs"})),
        "conditions": RecordCategory(frozenset({"Condition"})),
        "allergies": RecordCategory(frozenset({"AllergyIntolerance"})),
        "vaccinations": RecordCategory(frozenset({"Immunization"})),
        "notes": RecordCategory(frozenset({"DocumentReference"})),
        "appointments": RecordCategory(frozenset({"Appointment", "Encounter"})),
        "referrals": RecordCategory(frozenset({"ServiceRequest"})),
        "care-plans": RecordCategory(frozenset({"CarePlan", "CareTeam", "Procedure"})),
    }
)


@dataclass(frozen=True, slots=True)
class Coverage:
    """What a set of classes covers together: the resource types (the Patient always),
    and the Observation categories (None: every Observation, when Observation is covered)."""

    types: frozenset[str]
    observation_categories: frozenset[str] | None


def coverage(classes: Iterable[str]) -> Coverage:
    """What ``classes`` (resource type names, or category codes of
    :data:`RECORD_CATEGORIES`) cover together; unknown codes cover nothing."""
    types: set[str] = {"Patient"}
    whole_observations = False
    observation_categories: set[str] = set()
    for code in classes:
        category = RECORD_CATEGORIES.get(code)
        if category is None:
            types.add(code)
            whole_observations = whole_observations or code == "Observation"
            continue
        types |= category.types
        if "Observation" in category.types:
            if category.observation_categories is None:
                whole_observations = True
            else:
                observation_categories |= category.observation_categories
    limited = None if whole_observations else frozenset(observation_categories)
    return Coverage(frozenset(types), limited)
