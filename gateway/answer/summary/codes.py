"""The code and identifier systems, profiles, section codes and extensions the patient
summary names.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

IPS_BASE = "http://hl7.org/fhir/uv/ips/StructureDefinition/"
#: The IPS profile each kind of entry conforms to (and names in ``meta.profile``).
IPS_PROFILES: Mapping[str, str] = {
    "Bundle": IPS_BASE + "Bundle-uv-ips",
    "Composition": IPS_BASE + "Composition-uv-ips",
    "Patient": IPS_BASE + "Patient-uv-ips",
    "MedicationRequest": IPS_BASE + "MedicationRequest-uv-ips",
    "Condition": IPS_BASE + "Condition-uv-ips",
    "Observation": IPS_BASE + "Observation-results-laboratory-pathology-uv-ips",
}

LOINC = "http://loinc.org"
#: LOINC codes of the sections (and the IPS document type).
SECTION_CODES: Mapping[str, tuple[str, str]] = {
    "document": ("60591-5", "Patient summary Document"),
    "medications": ("10160-0", "History of Medication use Narrative"),
    "allergies": ("48765-2", "Allergies and adverse reactions Document"),
    "problems": ("11450-4", "Problem list - Reported"),
    "past_problems": ("11348-0", "History of Past illness Narrative"),
    "results": ("30954-2", "Relevant diagnostic tests/laboratory data Narrative"),
    "encounters": ("46240-8", "History of Hospitalizations+Outpatient visits Narrative"),
}

EMPTY_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ATC_SYSTEM = "http://www.whocc.no/atc"
#: The identifier system of the document's and the Composition's ``urn:uuid`` identifiers.
URI_SYSTEM = "urn:ietf:rfc:3986"
#: Extensions the gateway adds for its own bookkeeping, left out of the document.
GATEWAY_EXTENSIONS = frozenset(
    {
        "https://samlad.se/fhir/StructureDefinition/fetched-at",
        "https://samlad.se/fhir/StructureDefinition/also-reported-by",
    }
)
#: Namespace of every UUID in a summary (UUIDv5, so ids are reproducible).
SUMMARY_NAMESPACE = uuid.UUID("6f2b7c1e-3d4a-5b8c-9e0f-a1b2c3d4e5f6")
