"""The adapter for legacy RIVTA-style SOAP 1.1 sources (``kind = "legacy-xml"``).

Such a source is not FHIR: it answers one POSTed XML request per domain, with the person
identified by personnummer in the request body, and returns records with a common header
(source system HSA-id, author, care unit, Swedish ``YYYYMMDDhhmmss`` times without zone).
This adapter maps the answers to the FHIR R4 resources the FHIR sources give:

=============================  ==================  ===========================================
contract                       FHIR type           from
=============================  ==================  ===========================================
GetPatientDemographics 1       Patient             name, sex ``M``/``K``, birth date, address
GetLaboratoryOrderOutcome 4    Observation         one per analysis: NPU code, value, unit
GetLaboratoryOrderOutcome 4    DiagnosticReport    one per order, its Observations in result
GetReferralOutcome 3           ServiceRequest      the referral, answered or waiting
GetReferralOutcome 3           DiagnosticReport    the answer, basedOn the ServiceRequest
GetImagingOutcome 1            DiagnosticReport    the imaging report and examination code
GetCarePlans 2                 CarePlan            title, type (SIP, VP, ...), text content
GetFunctionalStatus 2          Observation         PADL assessments, disability (ICF)
GetMaternityMedicalHistory 2   Observation         antenatal registration and check-ups
GetMedicationHistory 2         MedicationRequest   ATC + NPL-id, dosage, treatment period
GetCareContacts 3              Encounter           contact code → ``class``, period, unit
GetCareDocumentation 2         DocumentReference   note text as a base64 text/plain attachment
GetDiagnosis 2                 Condition           ICD-10-SE, Huvuddiagnos/Bidiagnos, chronic
GetAlertInformation 2          AllergyIntolerance  hypersensitivity; severity → criticality
GetAlertInformation 2          Flag                other alert information, its type kept
GetVaccinationHistory 2        Immunization        ATC, product, dose number, programme
=============================  ==================  ===========================================

Appointment (and any other type) is not offered by these services:
:meth:`LegacyXmlAdapter.search` returns ``[]`` for it.

Identity. The Patient id is an HMAC of the source id and the personnummer, so it reveals
nothing; the key is ``patient_id_secret`` from the dialect (ids then survive restarts) or
a random key per adapter. Because every request needs the personnummer, the adapter keeps
a bounded map from the ids it issued to the person (filled by :meth:`find_patient`); an id
it did not issue, or has evicted, raises ``SourceProtocolError``. Other resource ids are
UUIDv5s of the source id and the record's documentId, never raw upstream text.

Times. ``YYYYMMDDhhmmss`` is Swedish wall-clock time; it is written as ISO 8601 with the
Europe/Stockholm offset in force at that moment, dates as ``YYYY-MM-DD``, both by
:mod:`fhir_profiles.datetimes`. Code systems sent as OIDs become FHIR system URIs by
:func:`fhir_profiles.codes.system_for_oid`.

The package: :mod:`~adapters.legacy_xml.adapter` (the adapter: identity, search),
:mod:`~adapters.legacy_xml.soap` (contracts, envelope, the checks on an answer),
:mod:`~adapters.legacy_xml.records` (the hardened parser and the record reader),
:mod:`~adapters.legacy_xml.dialect` (the settings), and one module per contract's mapping
to FHIR (``patient``, ``laboratory``, ``medication``, ``contacts``, ``documentation``,
``diagnosis``, ``alerts``, ``vaccination``, ``referrals``, ``imaging``, ``careplans``,
``functional``, ``maternity``). A type read from several contracts (Observation,
DiagnosticReport) asks them all at once.

Safety rules that hold for every request:

* the personnummer travels in the POST body only, never in a URL, and never appears in
  an error message; fault strings and bodies from the source are never repeated either;
* XML is parsed with :mod:`defusedxml` with DTDs, entity declarations and external
  references forbidden, so a hostile source cannot use XXE, entity expansion ("billion
  laughs") or a remote DTD; SOAP 1.1 forbids DTDs in messages anyway;
* bodies are streamed and reading stops at ``max_response_bytes``; redirects are not
  followed;
* every record must carry the requested person's identifier in its header, so a source
  that mixes up people cannot hand us a stranger's data.
"""

from __future__ import annotations

from adapters.legacy_xml.adapter import SUPPORTED_TYPES, LegacyXmlAdapter
from adapters.legacy_xml.dialect import LegacyXmlDialect, parse_dialect
from adapters.legacy_xml.records import parse_xml

__all__ = [
    "SUPPORTED_TYPES",
    "LegacyXmlAdapter",
    "LegacyXmlDialect",
    "parse_dialect",
    "parse_xml",
]
