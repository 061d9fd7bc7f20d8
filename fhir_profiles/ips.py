"""What the International Patient Summary (IPS, HL7 FHIR IG 2.0.0) names: the profile of
each kind of entry, and the LOINC codes of the document and its sections.

The code systems the summary codes with (LOINC, ATC, list-empty-reason) are in
:mod:`fhir_profiles.codes`, the ``data-absent-reason`` extension in
:mod:`fhir_profiles.extensions`, the ``$summary`` OperationDefinition in
:mod:`fhir_profiles.conformance`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: The IPS profile each kind of entry conforms to (and names in ``meta.profile``): by
#: resource type, and ``vital-signs`` for the Vital Signs section's Observations.
IPS_PROFILES: Mapping[str, str] = MappingProxyType(
    {
        "Bundle": "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips",
        "Composition": "http://hl7.org/fhir/uv/ips/StructureDefinition/Composition-uv-ips",
        "Patient": "http://hl7.org/fhir/uv/ips/StructureDefinition/Patient-uv-ips",
        "MedicationRequest": "http://hl7.org/fhir/uv/ips/StructureDefinition/MedicationRequest-uv-ips",
        "Condition": "http://hl7.org/fhir/uv/ips/StructureDefinition/Condition-uv-ips",
        "AllergyIntolerance": "http://hl7.org/fhir/uv/ips/StructureDefinition/AllergyIntolerance-uv-ips",
        "Immunization": "http://hl7.org/fhir/uv/ips/StructureDefinition/Immunization-uv-ips",
        "DiagnosticReport": "http://hl7.org/fhir/uv/ips/StructureDefinition/DiagnosticReport-uv-ips",
        "Observation": "http://hl7.org/fhir/uv/ips/StructureDefinition/Observation-results-laboratory-pathology-uv-ips",
        "Procedure": "http://hl7.org/fhir/uv/ips/StructureDefinition/Procedure-uv-ips",
        "Flag": "http://hl7.org/fhir/uv/ips/StructureDefinition/Flag-alert-uv-ips",
        # The Vital Signs section's entries: FHIR R4's own vital signs profile.
        "vital-signs": "http://hl7.org/fhir/StructureDefinition/vitalsigns",
    }
)

#: LOINC codes (code, display) of the sections, and of the IPS document type.
SECTION_CODES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "document": ("60591-5", "Patient summary Document"),
        "medications": ("10160-0", "History of Medication use Narrative"),
        "allergies": ("48765-2", "Allergies and adverse reactions Document"),
        "problems": ("11450-4", "Problem list - Reported"),
        "past_problems": ("11348-0", "History of Past illness Narrative"),
        "results": ("30954-2", "Relevant diagnostic tests/laboratory data Narrative"),
        "encounters": ("46240-8", "History of Hospitalizations+Outpatient visits Narrative"),
        "immunizations": ("11369-6", "History of Immunization Narrative"),
        "procedures": ("47519-4", "History of Procedures Document"),
        "plan_of_care": ("18776-5", "Plan of care note"),
        "alerts": ("104605-1", "Alert"),
        "vital_signs": ("8716-3", "Vital signs"),
    }
)
