"""Region Öst on the wire: SOAP 1.1 envelopes in, RIVTA-style responses and Faults out.

Requests are parsed with :mod:`defusedxml` with DTDs forbidden (SOAP 1.1 forbids them
anyway), so the simulator is no easier to attack than the gateway. Responses are built
with :mod:`xml.etree.ElementTree`, which escapes text. Times are written as Swedish
wall-clock ``YYYYMMDDhhmmss`` without a zone, dates as ``YYYYMMDD``, decimals with a
comma: that is how the legacy system stores them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, datetime
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped]
from defusedxml import DefusedXmlException

from simregions.legacy.contracts import (
    ADDRESSING_NS,
    ATC_OID,
    CARE_CONTACT_CODES,
    CARE_CONTACT_TYPE_OID,
    GET_CARE_CONTACTS,
    GET_CARE_DOCUMENTATION,
    GET_LABORATORY_ORDER_OUTCOME,
    GET_MEDICATION_HISTORY,
    GET_PATIENT_DEMOGRAPHICS,
    ICD10SE_OID,
    LOCAL_LAB_CODE_OID,
    NOTE_CODES,
    NOTE_TYPE_OID,
    NPL_ID_OID,
    NPU_OID,
    PERSONNUMMER_OID,
    SAMORDNINGSNUMMER_OID,
    SOAP_ENV_NS,
    Contract,
)
from simregions.legacy.records import (
    CareContact,
    Header,
    LabOrder,
    Note,
    PersonRecord,
    Prescription,
)
from simregions.legacy.spec import LegacyRegionSpec

Element = ET.Element


class RequestError(ValueError):
    """The request is not one the contract accepts; the text is safe to send back."""


def timestamp(moment: datetime) -> str:
    """``YYYYMMDDhhmmss`` for a naive local time."""
    return moment.strftime("%Y%m%d%H%M%S")


def day(value: date) -> str:
    """``YYYYMMDD``."""
    return value.strftime("%Y%m%d")


def decimal_text(value: float) -> str:
    """A lab value as Östjournal writes it: decimal comma, no trailing ``.0`` for integers."""
    return str(value).replace(".", ",")


def parse_request(body: bytes, contract: Contract, region: LegacyRegionSpec) -> str:
    """Check a request envelope for ``contract`` and return the canonical personnummer."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise RequestError("Request is not well-formed XML without a DTD") from exc
    if root.tag != f"{{{SOAP_ENV_NS}}}Envelope":
        raise RequestError("Request is not a SOAP 1.1 envelope")
    address = root.find(f"{{{SOAP_ENV_NS}}}Header/{{{ADDRESSING_NS}}}LogicalAddress")
    if address is not None and (address.text or "").strip() != region.care_provider_hsa_id:
        raise RequestError("Unknown logical address")
    body_element = root.find(f"{{{SOAP_ENV_NS}}}Body")
    request = None if body_element is None else body_element.find(contract.request_tag)
    if request is None:
        raise RequestError(f"Body must hold one {contract.name} element")
    patient = request.find(f"{{{contract.responder_ns}}}patientId")
    if patient is None:
        raise RequestError("patientId is missing")
    pnr = (patient.findtext(f"{{{contract.core_ns}}}id") or "").strip()
    kind = (patient.findtext(f"{{{contract.core_ns}}}type") or "").strip()
    if kind not in (PERSONNUMMER_OID, SAMORDNINGSNUMMER_OID):
        raise RequestError("patientId type must be the personnummer or samordningsnummer OID")
    if len(pnr) != 12 or not pnr.isdigit():
        # Never echo the number: the fault text goes back over the wire and into logs.
        raise RequestError("patientId id must be 12 digits")
    return pnr


def fault(code: str, text: str) -> bytes:
    """A SOAP 1.1 Fault envelope; ``code`` is ``Client`` or ``Server``."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV_NS}"><soap:Body><soap:Fault>'
        f"<faultcode>soap:{code}</faultcode><faultstring>{escape(text)}</faultstring>"
        "</soap:Fault></soap:Body></soap:Envelope>"
    ).encode()


class Writer:
    """Builds one response envelope for one contract (the overview contracts' bodies are
    in :mod:`simregions.legacy.wire_overview`)."""

    def __init__(self, contract: Contract, region: LegacyRegionSpec) -> None:
        self.contract = contract
        self.region = region
        self.envelope = Element(f"{{{SOAP_ENV_NS}}}Envelope")
        ET.SubElement(self.envelope, f"{{{SOAP_ENV_NS}}}Header")
        body = ET.SubElement(self.envelope, f"{{{SOAP_ENV_NS}}}Body")
        self.response = ET.SubElement(body, contract.response_tag)

    def record(self, name: str) -> Element:
        return ET.SubElement(self.response, f"{{{self.contract.responder_ns}}}{name}")

    def el(self, parent: Element, name: str, text: str | None = None) -> Element:
        child = ET.SubElement(parent, f"{{{self.contract.core_ns}}}{name}")
        if text is not None:
            child.text = text
        return child

    def code(self, parent: Element, name: str, code: str, system: str, display: str) -> None:
        holder = self.el(parent, name)
        self.el(holder, "code", code)
        self.el(holder, "codeSystem", system)
        self.el(holder, "displayName", display)

    def original_text(self, parent: Element, name: str, text: str) -> None:
        """A CVType without a code: its ``originalText`` only."""
        holder = self.el(parent, name)
        self.el(holder, "originalText", text)

    def org_unit(self, parent: Element, name: str, hsa_id: str, unit_name: str) -> None:
        holder = self.el(parent, name)
        self.el(holder, "orgUnitHSAId", hsa_id)
        self.el(holder, "orgUnitName", unit_name)

    def patient_id(self, parent: Element, pnr: str) -> None:
        holder = self.el(parent, "patientId")
        self.el(holder, "id", pnr)
        self.el(holder, "type", SAMORDNINGSNUMMER_OID if int(pnr[6:8]) > 60 else PERSONNUMMER_OID)

    def header(self, record: Element, name: str, header: Header, pnr: str) -> None:
        holder = self.el(record, name)
        self.el(holder, "documentId", header.document_id)
        self.el(holder, "sourceSystemHSAId", self.region.source_system_hsa_id)
        self.patient_id(holder, pnr)
        author = self.el(holder, "accountableHealthcareProfessional")
        self.el(author, "authorTime", timestamp(header.author_time))
        self.el(author, "healthcareProfessionalHSAId", header.author.hsa_id)
        self.el(author, "healthcareProfessionalName", header.author.name)
        unit = self.el(author, "healthcareProfessionalOrgUnit")
        self.el(unit, "orgUnitHSAId", header.unit.hsa_id)
        self.el(unit, "orgUnitName", header.unit.name)
        self.el(author, "healthcareProfessionalCareUnitHSAId", header.unit.hsa_id)
        self.el(author, "healthcareProfessionalCareGiverHSAId", header.care_giver_hsa_id)
        if header.signed is not None:
            signer = self.el(holder, "legalAuthenticator")
            self.el(signer, "signatureTime", timestamp(header.signed))
            self.el(signer, "legalAuthenticatorHSAId", header.author.hsa_id)
            self.el(signer, "legalAuthenticatorName", header.author.name)
        if header.approved_for_patient is not None:
            self.el(
                holder, "approvedForPatient", "true" if header.approved_for_patient else "false"
            )
        if header.nullified_reason is not None:
            self.el(holder, "nullified", "true")
            self.el(holder, "nullifiedReason", header.nullified_reason)
        if header.care_contact_id is not None:
            self.el(holder, "careContactId", header.care_contact_id)

    def result(self, code: str = "OK") -> None:
        holder = self.record("result")
        self.el(holder, "resultCode", code)

    def tobytes(self) -> bytes:
        return bytes(ET.tostring(self.envelope, encoding="utf-8", xml_declaration=True))


def demographics_response(region: LegacyRegionSpec, record: PersonRecord | None) -> bytes:
    """``GetPatientDemographicsResponse``: the person, or no ``patient`` if unknown here."""
    writer = Writer(GET_PATIENT_DEMOGRAPHICS, region)
    if record is not None:
        person = record.person
        patient = writer.record("patient")
        writer.patient_id(patient, person.pnr)
        writer.el(patient, "givenName", person.given)
        writer.el(patient, "familyName", person.family)
        writer.el(patient, "gender", "M" if person.sex == "male" else "K")
        writer.el(patient, "birthDate", day(person.birth_date))
        writer.el(patient, "protectedIdentity", "true" if person.protected_identity else "false")
        if not person.protected_identity:
            address = writer.el(patient, "address")
            writer.el(address, "street", person.street)
            writer.el(address, "postalCode", person.postal_code)
            writer.el(address, "city", person.city)
            writer.el(patient, "phone", person.phone)
    writer.result()
    return writer.tobytes()


def medication_response(
    region: LegacyRegionSpec, pnr: str, items: tuple[Prescription, ...]
) -> bytes:
    """``GetMedicationHistoryResponse``."""
    writer = Writer(GET_MEDICATION_HISTORY, region)
    for item in items:
        record = writer.record("medicationMedicalRecord")
        writer.header(record, "medicationMedicalRecordHeader", item.header, pnr)
        body = writer.el(record, "medicationMedicalRecordBody")
        prescription = writer.el(body, "medicationPrescription")
        writer.el(prescription, "prescriptionId", item.prescription_id)
        writer.el(prescription, "typeOfPrescription", "I")
        writer.el(prescription, "prescriptionStatus", "Active" if item.active else "Inactive")
        prescriber = writer.el(prescription, "prescriber")
        writer.el(prescriber, "authorTime", timestamp(item.header.author_time))
        writer.el(prescriber, "healthcareProfessionalHSAId", item.header.author.hsa_id)
        writer.el(prescriber, "healthcareProfessionalName", item.header.author.name)
        writer.el(prescription, "startOfTreatment", day(item.start))
        writer.el(prescription, "endOfTreatment", day(item.end))
        if item.reason is not None:
            reason = writer.el(prescription, "prescriptionReason")
            writer.code(reason, "reason", item.reason.icd10, ICD10SE_OID, item.reason.display)
        drug = writer.el(prescription, "drug")
        medicine = item.medicine
        writer.code(drug, "atcCode", medicine.atc, ATC_OID, medicine.atc_display)
        npl = writer.el(drug, "nplId")
        writer.el(npl, "code", item.npl_id)
        writer.el(npl, "codeSystem", NPL_ID_OID)
        writer.el(drug, "productName", medicine.product)
        writer.el(drug, "dosageInstruction", medicine.dosage)
    writer.result()
    return writer.tobytes()


def laboratory_response(region: LegacyRegionSpec, pnr: str, items: tuple[LabOrder, ...]) -> bytes:
    """``GetLaboratoryOrderOutcomeResponse``: one outcome per order, NPU-coded analyses."""
    writer = Writer(GET_LABORATORY_ORDER_OUTCOME, region)
    for item in items:
        record = writer.record("laboratoryOrderOutcome")
        writer.header(record, "laboratoryOrderOutcomeHeader", item.header, pnr)
        body = writer.el(record, "laboratoryOrderOutcomeBody")
        writer.el(body, "resultType", "DEF" if item.final else "PREL")
        writer.el(body, "registrationTime", timestamp(item.registered))
        for result in item.analyses:
            analysis = result.analysis
            element = writer.el(body, "analysis")
            writer.el(element, "analysisId", result.analysis_id)
            if analysis.npu is not None and analysis.npu_display is not None:
                writer.code(element, "analysisCode", analysis.npu, NPU_OID, analysis.npu_display)
            else:
                # No NPU code: the lab's local code, under Östjournal's own code system.
                local = analysis.local_code or analysis.key
                writer.code(element, "analysisCode", local, LOCAL_LAB_CODE_OID, analysis.name_sv)
            writer.el(element, "analysisText", analysis.name_sv)
            period = writer.el(element, "analysisTime")
            writer.el(period, "start", timestamp(result.sampled))
            writer.el(element, "analysisStatus", "Slutsvar" if item.final else "Preliminärsvar")
            outcome = writer.el(element, "analysisOutcome")
            writer.el(outcome, "outcomeValue", decimal_text(result.value))
            writer.el(outcome, "outcomeUnit", analysis.unit_display)
            low, high = analysis.low, analysis.high
            flagged = (high is not None and result.value > high) or (
                low is not None and result.value < low
            )
            writer.el(outcome, "pathologicalFlag", "true" if flagged else "false")
            interval = writer.el(outcome, "referenceInterval")
            if low is not None:
                writer.el(interval, "low", decimal_text(_ref(low, analysis.decimals)))
            if high is not None:
                writer.el(interval, "high", decimal_text(_ref(high, analysis.decimals)))
    writer.result()
    return writer.tobytes()


def _ref(value: float, decimals: int) -> float:
    rounded = round(value, decimals)
    return int(rounded) if decimals == 0 else rounded


def care_contacts_response(
    region: LegacyRegionSpec, pnr: str, items: tuple[CareContact, ...]
) -> bytes:
    """``GetCareContactsResponse``."""
    writer = Writer(GET_CARE_CONTACTS, region)
    for item in items:
        record = writer.record("careContact")
        writer.header(record, "careContactHeader", item.header, pnr)
        body = writer.el(record, "careContactBody")
        writer.code(body, "careContactCode", item.code, CARE_CONTACT_TYPE_OID,
                    CARE_CONTACT_CODES[item.code])  # fmt: skip
        if item.reason is not None:
            reason = writer.el(body, "careContactReason")
            writer.el(reason, "text", item.reason.display)
            writer.el(reason, "code", item.reason.icd10)
            writer.el(reason, "codeSystem", ICD10SE_OID)
        unit = writer.el(body, "careContactOrgUnit")
        writer.el(unit, "orgUnitHSAId", item.header.unit.hsa_id)
        writer.el(unit, "orgUnitName", item.header.unit.name)
        writer.el(unit, "orgUnitLocation", item.header.unit.city)
        period = writer.el(body, "careContactTimePeriod")
        writer.el(period, "start", timestamp(item.start))
        writer.el(period, "end", timestamp(item.end))
        writer.el(body, "careContactStatus", "Avslutad")
    writer.result()
    return writer.tobytes()


def care_documentation_response(
    region: LegacyRegionSpec, pnr: str, items: tuple[Note, ...]
) -> bytes:
    """``GetCareDocumentationResponse``: notes as plain text."""
    writer = Writer(GET_CARE_DOCUMENTATION, region)
    for item in items:
        record = writer.record("careDocumentation")
        writer.header(record, "careDocumentationHeader", item.header, pnr)
        body = writer.el(record, "careDocumentationBody")
        note = writer.el(body, "clinicalDocumentNote")
        writer.code(note, "clinicalDocumentNoteCode", item.code, NOTE_TYPE_OID,
                    NOTE_CODES[item.code])  # fmt: skip
        writer.el(note, "clinicalDocumentNoteTitle", item.title)
        writer.el(note, "clinicalDocumentNoteText", item.text)
    writer.result()
    return writer.tobytes()
