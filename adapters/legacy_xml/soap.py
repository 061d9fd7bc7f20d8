"""The SOAP 1.1 exchange with a RIV-TA source: the service contracts, the request envelope,
and the checks on the answer before any record in it is read.

One POST per request, the personnummer in the body (never in the URL); the answer is
parsed with the hardened parser of :mod:`adapters.legacy_xml.records`. Fault strings and
bodies from the source are never repeated in an error.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import httpx
from defusedxml import DefusedXmlException  # type: ignore[import-untyped]

from adapters.errors import SourceError, SourceProtocolError, SourceUnavailable
from adapters.legacy_xml.dialect import LegacyXmlDialect
from adapters.legacy_xml.records import Record, parse_xml
from adapters.transport import exchange
from fhir_profiles.identifiers import PersonIdentifier
from fhir_profiles.oids import bare_oid

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
ADDRESSING_NS = "urn:riv:itintegration:registry:1"
SOAP_XML = "text/xml; charset=utf-8"

_SAFE_CODE = re.compile(r"^[A-Za-z_]{1,40}$")


@dataclass(frozen=True)
class Contract:
    """One RIV-TA service contract: its name, namespaces, path and record element."""

    name: str
    responder_ns: str
    core_ns: str
    path: str
    record: str

    @property
    def soap_action(self) -> str:
        """The ``SOAPAction`` header value."""
        return f'"{self.responder_ns}:{self.name}"'


def _national(domain: str, name: str, version: int, record: str) -> Contract:
    return Contract(
        name=name,
        responder_ns=f"urn:riv:{domain}:{name}Responder:{version}",
        core_ns=f"urn:riv:{domain}:{version}",
        path=f"/{domain.replace(':', '/')}/{name}/{version}/rivtabp21",
        record=record,
    )


DEMOGRAPHICS = Contract(
    name="GetPatientDemographics",
    responder_ns="urn:riv:ost:patient:GetPatientDemographicsResponder:1",
    core_ns="urn:riv:ost:patient:1",
    path="/ost/patient/GetPatientDemographics/1/rivtabp21",
    record="patient",
)
LABORATORY = _national(
    "clinicalprocess:healthcond:actoutcome",
    "GetLaboratoryOrderOutcome",
    4,
    "laboratoryOrderOutcome",
)
MEDICATION = _national(
    "clinicalprocess:activityprescription:actoutcome",
    "GetMedicationHistory",
    2,
    "medicationMedicalRecord",
)
CONTACTS = _national("clinicalprocess:logistics:logistics", "GetCareContacts", 3, "careContact")
DOCUMENTATION = _national(
    "clinicalprocess:healthcond:description", "GetCareDocumentation", 2, "careDocumentation"
)
DIAGNOSIS = _national("clinicalprocess:healthcond:description", "GetDiagnosis", 2, "diagnosis")
ALERTS = _national(
    "clinicalprocess:healthcond:description", "GetAlertInformation", 2, "alertInformation"
)
REFERRALS = _national(
    "clinicalprocess:healthcond:actoutcome", "GetReferralOutcome", 3, "referralOutcome"
)
IMAGING = _national(
    "clinicalprocess:healthcond:actoutcome", "GetImagingOutcome", 1, "imagingOutcome"
)
CARE_PLANS = _national("clinicalprocess:logistics:logistics", "GetCarePlans", 2, "carePlan")
FUNCTIONAL_STATUS = _national(
    "clinicalprocess:healthcond:description",
    "GetFunctionalStatus",
    2,
    "functionalStatusAssessment",
)
MATERNITY = _national(
    "clinicalprocess:healthcond:actoutcome",
    "GetMaternityMedicalHistory",
    2,
    "maternityMedicalRecord",
)
VACCINATIONS = _national(
    "clinicalprocess:activityprescription:actoutcome",
    "GetVaccinationHistory",
    2,
    "vaccinationMedicalRecord",
)


def envelope(contract: Contract, person: PersonIdentifier, logical_address: str | None) -> bytes:
    """The request for ``person``: identity number and its system OID in the SOAP body."""
    envelope = ET.Element(f"{{{SOAP_ENV_NS}}}Envelope")
    header = ET.SubElement(envelope, f"{{{SOAP_ENV_NS}}}Header")
    if logical_address is not None:
        address = ET.SubElement(header, f"{{{ADDRESSING_NS}}}LogicalAddress")
        address.text = logical_address
    body = ET.SubElement(envelope, f"{{{SOAP_ENV_NS}}}Body")
    request = ET.SubElement(body, f"{{{contract.responder_ns}}}{contract.name}")
    patient = ET.SubElement(request, f"{{{contract.responder_ns}}}patientId")
    ET.SubElement(patient, f"{{{contract.core_ns}}}id").text = person.value
    ET.SubElement(patient, f"{{{contract.core_ns}}}type").text = bare_oid(person.oid_system)
    return bytes(ET.tostring(envelope, encoding="utf-8", xml_declaration=True))


async def call(
    client: httpx.AsyncClient,
    base_url: str,
    dialect: LegacyXmlDialect,
    contract: Contract,
    person: PersonIdentifier,
    what: str,
) -> ET.Element:
    """POST one request; return the contract's response element or raise a SourceError."""
    request = client.build_request(
        "POST",
        f"{base_url}{contract.path}",
        content=envelope(contract, person, dialect.logical_address),
        headers={
            "Content-Type": SOAP_XML,
            "Accept": "text/xml",
            "SOAPAction": contract.soap_action,
        },
    )
    # SOAP 1.1 sends Faults with 500: that body is read to tell what went wrong.
    status, body = await exchange(
        client,
        request,
        what,
        limit=dialect.max_response_bytes,
        readable=(500,),
    )
    try:
        root = parse_xml(body)
    except DefusedXmlException as exc:
        raise SourceProtocolError(f"{what}: response has a DTD or entities (refused)") from exc
    except (ET.ParseError, ValueError) as exc:
        if status != 200:
            raise SourceUnavailable(f"{what}: HTTP {status}") from exc
        raise SourceProtocolError(f"{what}: response is not well-formed XML") from exc
    if root.tag != f"{{{SOAP_ENV_NS}}}Envelope":
        raise SourceProtocolError(f"{what}: response is not a SOAP 1.1 envelope")
    soap_body = root.find(f"{{{SOAP_ENV_NS}}}Body")
    if soap_body is None:
        raise SourceProtocolError(f"{what}: SOAP envelope without a Body")
    soap_fault = soap_body.find(f"{{{SOAP_ENV_NS}}}Fault")
    if soap_fault is not None:
        raise _fault_error(soap_fault, what)
    if status != 200:
        raise SourceUnavailable(f"{what}: HTTP {status}")
    answer = soap_body.find(f"{{{contract.responder_ns}}}{contract.name}Response")
    if answer is None:
        raise SourceProtocolError(f"{what}: unexpected response element")
    _check_result(answer, contract, what)
    return answer


def answer_records(answer: ET.Element, contract: Contract, what: str) -> list[Record]:
    """The record elements of an answer, each read in the contract's core namespace."""
    tag = f"{{{contract.responder_ns}}}{contract.record}"
    return [Record(element, contract.core_ns, what) for element in answer.findall(tag)]


def _fault_error(fault: ET.Element, what: str) -> SourceError:
    """Client faults are ours to fix; Server faults may pass. The faultstring is dropped."""
    code = (fault.findtext("faultcode") or "").strip().rpartition(":")[2]
    if code == "Client":
        return SourceProtocolError(f"{what}: SOAP Fault (Client)")
    shown = code if _SAFE_CODE.match(code) else "?"
    return SourceUnavailable(f"{what}: SOAP Fault ({shown})")


def _check_result(answer: ET.Element, contract: Contract, what: str) -> None:
    """A RIVTA ``result`` of ERROR: TECHNICAL_ERROR may pass, anything else will not."""
    result = answer.find(f"{{{contract.responder_ns}}}result")
    if result is None:
        return
    code = (result.findtext(f"{{{contract.core_ns}}}resultCode") or "").strip()
    if code in ("OK", "INFO"):
        return
    error = (result.findtext(f"{{{contract.core_ns}}}errorCode") or "").strip()
    shown = error if _SAFE_CODE.match(error) else "?"
    if error == "TECHNICAL_ERROR":
        raise SourceUnavailable(f"{what}: result {shown}")
    raise SourceProtocolError(f"{what}: result {shown}")
