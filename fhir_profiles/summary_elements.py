"""The summary elements of each served type: what ``_summary=true`` returns.

FHIR marks some elements of each resource "summary" (Σ in the specification's tables);
a search with ``_summary=true`` returns only those (with ``id``, ``meta``, the mandatory
elements and modifier extensions). Choice elements are named without their type
(``effective`` for ``effectiveDateTime``). From FHIR R4, as the R4B definitions carry it
(identical for these types); ``tests/fhir_profiles/test_summary_elements.py`` holds the
table to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: Per served type of a person's record, its summary elements (besides ``id``, ``meta``
#: and ``implicitRules``, which every summary keeps).
SUMMARY_ELEMENTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "Observation": frozenset(
            {
                "basedOn",
                "code",
                "component",
                "derivedFrom",
                "effective",
                "encounter",
                "focus",
                "hasMember",
                "identifier",
                "issued",
                "partOf",
                "performer",
                "status",
                "subject",
                "value",
            }
        ),
        "MedicationRequest": frozenset(
            {
                "authoredOn",
                "basedOn",
                "doNotPerform",
                "groupIdentifier",
                "instantiatesCanonical",
                "instantiatesUri",
                "intent",
                "medication",
                "performerType",
                "priority",
                "reported",
                "requester",
                "status",
                "subject",
            }
        ),
        "Appointment": frozenset(
            {
                "appointmentType",
                "cancelationReason",
                "end",
                "identifier",
                "reasonCode",
                "serviceCategory",
                "serviceType",
                "specialty",
                "start",
                "status",
            }
        ),
        "Encounter": frozenset(
            {
                "appointment",
                "class",
                "diagnosis",
                "episodeOfCare",
                "identifier",
                "participant",
                "reasonCode",
                "reasonReference",
                "serviceType",
                "status",
                "subject",
                "type",
            }
        ),
        "Condition": frozenset(
            {
                "asserter",
                "bodySite",
                "clinicalStatus",
                "code",
                "encounter",
                "identifier",
                "onset",
                "recordedDate",
                "recorder",
                "subject",
                "verificationStatus",
            }
        ),
        "DocumentReference": frozenset(
            {
                "author",
                "category",
                "content",
                "context",
                "date",
                "description",
                "docStatus",
                "identifier",
                "masterIdentifier",
                "relatesTo",
                "securityLabel",
                "status",
                "subject",
                "type",
            }
        ),
        "AllergyIntolerance": frozenset(
            {
                "asserter",
                "category",
                "clinicalStatus",
                "code",
                "criticality",
                "identifier",
                "patient",
                "type",
                "verificationStatus",
            }
        ),
        "Immunization": frozenset(
            {
                "isSubpotent",
                "note",
                "occurrence",
                "patient",
                "performer",
                "primarySource",
                "status",
                "vaccineCode",
            }
        ),
        "DiagnosticReport": frozenset(
            {
                "category",
                "code",
                "effective",
                "encounter",
                "identifier",
                "issued",
                "media",
                "performer",
                "resultsInterpreter",
                "status",
                "subject",
            }
        ),
        "ServiceRequest": frozenset(
            {
                "asNeeded",
                "authoredOn",
                "basedOn",
                "bodySite",
                "category",
                "code",
                "doNotPerform",
                "encounter",
                "identifier",
                "instantiatesCanonical",
                "instantiatesUri",
                "intent",
                "locationCode",
                "locationReference",
                "occurrence",
                "orderDetail",
                "patientInstruction",
                "performer",
                "performerType",
                "priority",
                "quantity",
                "reasonCode",
                "reasonReference",
                "replaces",
                "requester",
                "requisition",
                "specimen",
                "status",
                "subject",
            }
        ),
        "Procedure": frozenset(
            {
                "asserter",
                "basedOn",
                "bodySite",
                "category",
                "code",
                "encounter",
                "identifier",
                "instantiatesCanonical",
                "instantiatesUri",
                "location",
                "outcome",
                "partOf",
                "performed",
                "performer",
                "reasonCode",
                "reasonReference",
                "recorder",
                "status",
                "statusReason",
                "subject",
            }
        ),
        "CarePlan": frozenset(
            {
                "addresses",
                "author",
                "basedOn",
                "category",
                "created",
                "description",
                "encounter",
                "identifier",
                "instantiatesCanonical",
                "instantiatesUri",
                "intent",
                "partOf",
                "period",
                "replaces",
                "status",
                "subject",
                "title",
            }
        ),
        "CareTeam": frozenset(
            {
                "category",
                "encounter",
                "identifier",
                "managingOrganization",
                "name",
                "period",
                "status",
                "subject",
            }
        ),
        "Flag": frozenset(
            {"author", "category", "code", "encounter", "identifier", "period", "status", "subject"}
        ),
        "MedicationDispense": frozenset({"medication", "status", "subject", "whenPrepared"}),
    }
)
