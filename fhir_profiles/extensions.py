"""The URLs of the FHIR extensions the gateway writes or reads.

Samlad's own are under ``https://samlad.se/fhir/StructureDefinition/``: bookkeeping on a
unified resource (when it was fetched, which other sources reported it), the status of a
source in an answer, the level of an organisation in a consent, and the access log's
(on an AuditEvent: emergency access, on whose behalf, its place in the hash chain; on the
searchset Bundle: the signed checkpoint a reading was made under). Two
of Samlad's extensions are named beside the code that writes them:
:data:`fhir_profiles.units.ORIGINAL_QUANTITY_URL` and
:data:`fhir_profiles.demographics.DEMOGRAPHIC_CONFLICT_URL`.

The others are published ones: HL7's ``data-absent-reason`` and SMART's ``oauth-uris``.
"""

from __future__ import annotations

#: Where every extension of Samlad's own is defined: none of them is a source's data.
SAMLAD_EXTENSIONS = "https://samlad.se/fhir/StructureDefinition/"
#: When the gateway fetched a unified resource from its source (``meta.extension``).
FETCHED_AT_URL = "https://samlad.se/fhir/StructureDefinition/fetched-at"
#: One per duplicate merged into a resource: the duplicate's ``meta.source``.
ALSO_REPORTED_BY_URL = "https://samlad.se/fhir/StructureDefinition/also-reported-by"
#: The status of one source in an answer's OperationOutcome (id, status, time, count).
SOURCE_STATUS_URL = "https://samlad.se/fhir/StructureDefinition/source-status"
#: Whether a consent's or block's actor is a care provider or a care unit.
HSA_ORGANISATION_LEVEL_URL = "https://samlad.se/fhir/StructureDefinition/hsa-organisation-level"
#: On a delayed-release Consent's ``provision``: how many days new entries are held back
#: from the person's online view (a ``valueDuration`` in UCUM days).
RELEASE_DELAY_URL = "https://samlad.se/fhir/StructureDefinition/release-delay"
#: The access log's: on an AuditEvent, emergency access (nödåtkomst), the person or care
#: provider a read was made on behalf of, the entry's place in the hash chain; on the
#: searchset Bundle's ``meta``, the signed checkpoint the reading was made under.
EMERGENCY_ACCESS_URL = "https://samlad.se/fhir/StructureDefinition/emergency-access"
ON_BEHALF_OF_URL = "https://samlad.se/fhir/StructureDefinition/on-behalf-of"
AUDIT_CHAIN_URL = "https://samlad.se/fhir/StructureDefinition/audit-chain"
AUDIT_CHECKPOINT_URL = "https://samlad.se/fhir/StructureDefinition/audit-checkpoint"

#: HL7's extension marking a required element whose value is missing, and why.
DATA_ABSENT_REASON_URL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
#: SMART App Launch: the OAuth endpoints, on the CapabilityStatement's ``rest.security``.
SMART_OAUTH_URIS_URL = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
