"""The canonical URLs of the conformance resources the gateway names: the Samlad profile
each emitted type conforms to (the StructureDefinitions in ``fhir_profiles/profiles``),
and the OperationDefinitions of the operations it serves.

The IPS profiles of the patient summary's entries are in :mod:`fhir_profiles.ips`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fhir_profiles.resource_types import RESOURCE_TYPES

#: The profile each emitted type must conform to: the record's types (with their profiles
#: in :mod:`fhir_profiles.resource_types`) and the gateway's own answers.
PROFILE_FOR_TYPE: Mapping[str, str] = MappingProxyType(
    {
        **{t.name: t.profile for t in RESOURCE_TYPES.values()},
        "OperationOutcome": "https://samlad.se/fhir/StructureDefinition/samlad-operationoutcome",
        "Bundle": "https://samlad.se/fhir/StructureDefinition/samlad-bundle-searchset",
        "Consent": "https://samlad.se/fhir/StructureDefinition/samlad-consent",
        "AuditEvent": "https://samlad.se/fhir/StructureDefinition/samlad-auditevent",
    }
)

#: ``Patient/{id}/$everything`` (FHIR core).
PATIENT_EVERYTHING_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
#: ``Patient/{id}/$summary`` (the IPS implementation guide).
IPS_SUMMARY_DEFINITION = "http://hl7.org/fhir/uv/ips/OperationDefinition/summary"
#: ``Patient/{id}/$download`` (the patient summary or the whole record as a file to keep;
#: Samlad's own).
DOWNLOAD_DEFINITION = "https://samlad.se/fhir/OperationDefinition/Patient-download"
#: ``Patient/{id}/$emergency-access`` (nödåtkomst; Samlad's own).
EMERGENCY_ACCESS_DEFINITION = "https://samlad.se/fhir/OperationDefinition/Patient-emergency-access"
#: ``Patient/$export`` and ``Group/{id}/$export`` (the Bulk Data Access IG v2).
PATIENT_EXPORT_DEFINITION = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
GROUP_EXPORT_DEFINITION = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"
#: The NDJSON media types ``_outputFormat`` may name (the Bulk Data Access IG v2).
NDJSON_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
#: The media type the export's files are served as.
NDJSON_MEDIA_TYPE = "application/fhir+ndjson"
#: ``Patient/{id}/$notification-settings`` (what the person is told of, and where; Samlad's own).
NOTIFICATION_SETTINGS_DEFINITION = (
    "https://samlad.se/fhir/OperationDefinition/Patient-notification-settings"
)
