"""Every resource type the gateway serves about a person, and the FHIR facts about each:
the one home of what a type is. The rules the gateway applies per type (duplicates,
search parameters, the patient summary's sections) live with those rules and are held
to this list by tests.

A type may have a profile per category: an Observation is a laboratory result, a vital
sign (growth included) or an assessment (functional status) by its ``category``
(:data:`~fhir_profiles.codes.OBSERVATION_CATEGORY_SYSTEM`), and :func:`profile_for` is the
one place a resource's profile is chosen (the validator and the normalisation both ask
it). A resource without a category of its own profile conforms to the type's ``profile``.

:data:`PATIENT_COMPARTMENT_TYPES` are the types asked of every source, in the order they
are asked, merged and streamed; the Patient and the Provenance the gateway makes are
emitted too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fhir_profiles.codes import OBSERVATION_CATEGORY_SYSTEM

#: A resource's ``id`` as FHIR R4 has it: 1 to 64 letters, digits, ``-`` and ``.``.
RESOURCE_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

#: A path to an element: keys from the resource down (lists on the way are walked).
Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResourceType:
    """What the gateway serves of one resource type."""

    name: str
    #: The Samlad profile every emitted resource of the type conforms to.
    profile: str
    #: Its date, dateTime and instant elements, normalised on the way in.
    datetime_fields: tuple[Path, ...] = ()
    #: Where it names its patient (dotted paths); empty for types not about a person.
    patient_fields: tuple[str, ...] = ()
    #: Elements every projection keeps (FHIR: "servers SHOULD return mandatory elements").
    mandatory: frozenset[str] = frozenset()
    #: Asked of every source for each person (in the patient compartment).
    compartment: bool = False
    #: About no patient: what references in answers point to (who, where), read from the
    #: source that answered by id.
    referenced: bool = False
    #: The profile of a resource in a category (an observation-category code) that has one.
    category_profiles: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


#: The Observation profiles: laboratory (the type's default), vital signs and growth,
#: assessments (functional status).
LAB_OBSERVATION_PROFILE = "https://samlad.se/fhir/StructureDefinition/samlad-observation-lab"
VITAL_SIGNS_PROFILE = "https://samlad.se/fhir/StructureDefinition/samlad-observation-vitalsigns"
SURVEY_OBSERVATION_PROFILE = "https://samlad.se/fhir/StructureDefinition/samlad-observation-survey"


def _types(*types: ResourceType) -> Mapping[str, ResourceType]:
    return MappingProxyType({t.name: t for t in types})


#: Every type the gateway emits about a person, compartment types in the order asked.
RESOURCE_TYPES: Mapping[str, ResourceType] = _types(
    ResourceType(
        "Observation",
        profile=LAB_OBSERVATION_PROFILE,
        datetime_fields=(
            ("effectiveDateTime",),
            ("effectiveInstant",),
            ("effectivePeriod", "start"),
            ("effectivePeriod", "end"),
            ("issued",),
            ("valueDateTime",),
        ),
        patient_fields=("subject",),
        mandatory=frozenset({"status", "code"}),
        compartment=True,
        category_profiles=MappingProxyType(
            {
                "laboratory": LAB_OBSERVATION_PROFILE,
                "vital-signs": VITAL_SIGNS_PROFILE,
                "survey": SURVEY_OBSERVATION_PROFILE,
            }
        ),
    ),
    ResourceType(
        "MedicationRequest",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-medicationrequest",
        datetime_fields=(
            ("authoredOn",),
            ("dispenseRequest", "validityPeriod", "start"),
            ("dispenseRequest", "validityPeriod", "end"),
        ),
        patient_fields=("subject",),
        mandatory=frozenset({"status", "intent", "subject", "medication"}),
        compartment=True,
    ),
    ResourceType(
        "Appointment",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-appointment",
        datetime_fields=(
            ("start",),
            ("end",),
            ("created",),
        ),
        patient_fields=("participant.actor",),
        mandatory=frozenset({"status", "participant"}),
        compartment=True,
    ),
    ResourceType(
        "Encounter",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-encounter",
        datetime_fields=(
            ("period", "start"),
            ("period", "end"),
            ("statusHistory", "period", "start"),
            ("statusHistory", "period", "end"),
            ("location", "period", "start"),
            ("location", "period", "end"),
        ),
        patient_fields=("subject",),
        mandatory=frozenset({"status", "class"}),
        compartment=True,
    ),
    ResourceType(
        "Condition",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-condition",
        datetime_fields=(
            ("onsetDateTime",),
            ("onsetPeriod", "start"),
            ("onsetPeriod", "end"),
            ("abatementDateTime",),
            ("abatementPeriod", "start"),
            ("abatementPeriod", "end"),
            ("recordedDate",),
        ),
        patient_fields=("subject",),
        mandatory=frozenset({"subject"}),
        compartment=True,
    ),
    ResourceType(
        "DocumentReference",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-documentreference",
        datetime_fields=(
            ("date",),
            ("context", "period", "start"),
            ("context", "period", "end"),
        ),
        patient_fields=("subject",),
        mandatory=frozenset({"status", "content"}),
        compartment=True,
    ),
    ResourceType(
        "AllergyIntolerance",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-allergyintolerance",
        datetime_fields=(
            ("onsetDateTime",),
            ("onsetPeriod", "start"),
            ("onsetPeriod", "end"),
            ("recordedDate",),
            ("lastOccurrence",),
            ("reaction", "onset"),
        ),
        patient_fields=("patient",),
        mandatory=frozenset({"patient"}),
        compartment=True,
    ),
    ResourceType(
        "Immunization",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-immunization",
        datetime_fields=(
            ("occurrenceDateTime",),
            ("recorded",),
            ("expirationDate",),
            ("reaction", "date"),
        ),
        patient_fields=("patient",),
        mandatory=frozenset({"status", "vaccineCode", "patient", "occurrence"}),
        compartment=True,
    ),
    ResourceType(
        "DiagnosticReport",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-diagnosticreport",
        datetime_fields=(
            ("effectiveDateTime",),
            ("effectivePeriod", "start"),
            ("effectivePeriod", "end"),
            ("issued",),
        ),
        patient_fields=("subject",),
        mandatory=frozenset({"status", "code"}),
        compartment=True,
    ),
    ResourceType(
        "ServiceRequest",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-servicerequest",
        datetime_fields=(
            ("occurrenceDateTime",),
            ("occurrencePeriod", "start"),
            ("occurrencePeriod", "end"),
            ("authoredOn",),
        ),
        patient_fields=("subject",),
        mandatory=frozenset({"status", "intent", "subject"}),
        compartment=True,
    ),
    ResourceType(
        "Procedure",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-procedure",
        datetime_fields=(
            ("performedDateTime",),
            ("performedPeriod", "start"),
            ("performedPeriod", "end"),
        ),
        patient_fields=("subject",),
        mandatory=frozenset({"status", "subject"}),
        compartment=True,
    ),
    ResourceType(
        "CarePlan",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-careplan",
        datetime_fields=(
            ("period", "start"),
            ("period", "end"),
            ("created",),
            ("activity", "detail", "scheduledPeriod", "start"),
            ("activity", "detail", "scheduledPeriod", "end"),
        ),
        patient_fields=("subject",),
        mandatory=frozenset({"status", "intent", "subject"}),
        compartment=True,
    ),
    ResourceType(
        "CareTeam",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-careteam",
        datetime_fields=(
            ("period", "start"),
            ("period", "end"),
            ("participant", "period", "start"),
            ("participant", "period", "end"),
        ),
        patient_fields=("subject",),
        mandatory=frozenset({"subject"}),
        compartment=True,
    ),
    ResourceType(
        "Flag",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-flag",
        datetime_fields=(
            ("period", "start"),
            ("period", "end"),
        ),
        patient_fields=("subject",),
        mandatory=frozenset({"status", "code", "subject"}),
        compartment=True,
    ),
    ResourceType(
        "MedicationDispense",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-medicationdispense",
        datetime_fields=(
            ("whenPrepared",),
            ("whenHandedOver",),
        ),
        patient_fields=("subject",),
        mandatory=frozenset({"status", "medication"}),
        compartment=True,
    ),
    ResourceType(
        "Practitioner",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-practitioner",
        datetime_fields=(("birthDate",),),
        referenced=True,
    ),
    ResourceType(
        "PractitionerRole",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-practitionerrole",
        datetime_fields=(("period", "start"), ("period", "end")),
        referenced=True,
    ),
    ResourceType(
        "Organization",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-organization",
        referenced=True,
    ),
    ResourceType(
        "Location",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-location",
        referenced=True,
    ),
    ResourceType(
        "Patient",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-patient",
        datetime_fields=(
            ("birthDate",),
            ("deceasedDateTime",),
        ),
    ),
    ResourceType(
        "Provenance",
        profile="https://samlad.se/fhir/StructureDefinition/samlad-provenance",
        datetime_fields=(
            ("recorded",),
            ("occurredDateTime",),
        ),
    ),
)

#: The types asked of every source, per person, in order.
PATIENT_COMPARTMENT_TYPES: tuple[str, ...] = tuple(
    t.name for t in RESOURCE_TYPES.values() if t.compartment
)

#: A person's record as the gateway serves it: the compartment types and the (unified)
#: Patient. What a principal can be granted, and what the gateway serves of what sources
#: return.
RECORD_TYPES: frozenset[str] = frozenset({"Patient", *PATIENT_COMPARTMENT_TYPES})

#: The types references point to that are about no patient (read by id from the source
#: that answered: :mod:`gateway.collect.directory`).
REFERENCED_TYPES: tuple[str, ...] = tuple(t.name for t in RESOURCE_TYPES.values() if t.referenced)


def profile_for(resource: Mapping[str, Any]) -> str | None:
    """The Samlad profile ``resource`` conforms to: its category's, else its type's; None
    for a type the catalogue does not hold."""
    served = RESOURCE_TYPES.get(str(resource.get("resourceType")))
    if served is None:
        return None
    if served.category_profiles:
        categories = resource.get("category")
        for concept in categories if isinstance(categories, list) else ():
            codings = concept.get("coding") if isinstance(concept, dict) else None
            for coding in codings if isinstance(codings, list) else ():
                if (
                    isinstance(coding, dict)
                    and coding.get("system") == OBSERVATION_CATEGORY_SYSTEM
                    and coding.get("code") in served.category_profiles
                ):
                    return served.category_profiles[coding["code"]]
    return served.profile


#: Every profile of every type (a type's own and those of its categories).
ALL_PROFILES: frozenset[str] = frozenset(
    url for t in RESOURCE_TYPES.values() for url in (t.profile, *t.category_profiles.values())
)
