"""The service contracts Region Öst answers: paths, namespaces and code-system OIDs.

Modelled on the Swedish national RIVTA service contracts (tjänstekontrakt, RIVTA BP 2.1,
SOAP 1.1). Request and response elements live in the contract's *Responder* namespace,
the record contents in the domain's *core* namespace, as in the real schemas.
``GetPatientDemographics`` is not a national contract: it stands in for the population
register look-up a real integration would make, and is marked by its regional ``urn:riv:ost``
namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
ADDRESSING_NS = "urn:riv:itintegration:registry:1"
SOAP_XML = "text/xml; charset=utf-8"

PERSONNUMMER_OID = "1.2.752.129.2.1.3.1"
SAMORDNINGSNUMMER_OID = "1.2.752.129.2.1.3.3"
NPU_OID = "1.2.208.176.2.1"
ATC_OID = "1.2.752.129.2.2.3.1.1"
NPL_ID_OID = "1.2.752.129.2.1.5.1"
ICD10SE_OID = "1.2.752.116.1.1.1.1.3"
#: Östjournal's own code system for analyses without an NPU code (a made-up OID arc).
LOCAL_LAB_CODE_OID = "1.2.752.129.2.2.9004.1"
#: Simulated regional code systems for contact and note types (their codes are listed below).
CARE_CONTACT_TYPE_OID = "1.2.752.129.2.2.2.25"
NOTE_TYPE_OID = "1.2.752.129.2.2.2.11"
#: National code lists of the clinical-process contracts: KV Informationstyp (the kind of
#: alert information, ``upp-*``), KV Allvarlighetsgrad and KV Visshetsgrad (a
#: hypersensitivity's severity and certainty).
INFORMATION_TYPE_OID = "1.2.752.129.2.2.2.1"
SEVERITY_OID = "1.2.752.129.2.2.3.3"
CERTAINTY_OID = "1.2.752.129.2.2.3.11"
#: Östjournal's own code systems for vaccination programmes and for imaging examinations
#: (made-up OID arcs).
VACCINATION_PROGRAMME_OID = "1.2.752.129.2.2.9004.2"
IMAGING_EXAMINATION_OID = "1.2.752.129.2.2.9004.3"
#: KVÅ, the Swedish classification of care measures (Socialstyrelsen); ICF, the
#: classification of functioning (its Swedish edition).
KVA_OID = "1.2.752.116.1.3.2.1.4"
ICF_OID = "1.2.752.116.1.1.3"
#: Östjournal's own code system for the activities a PADL assessment covers (made up).
PADL_ACTIVITY_OID = "1.2.752.129.2.2.9004.4"

#: careContactCode: the kind of care contact, in the national enumeration.
CARE_CONTACT_CODES: dict[str, str] = {
    "1": "Besök",
    "2": "Telefon",
    "3": "Vårdtillfälle",
    "4": "Dagsjukvård",
    "5": "Annan",
}
#: clinicalDocumentNoteCode: the kind of journal note.
NOTE_CODES: dict[str, str] = {
    "mot": "Mottagningsanteckning",
    "ssk": "Sjuksköterskeanteckning",
    "tel": "Telefonanteckning",
    "vid": "Anteckning videobesök",
    "aku": "Akutanteckning",
    "epi": "Epikris",
}


@dataclass(frozen=True)
class Contract:
    """One service contract: its request element and where it is served."""

    name: str
    responder_ns: str
    core_ns: str
    path: str

    @property
    def request_tag(self) -> str:
        return f"{{{self.responder_ns}}}{self.name}"

    @property
    def response_tag(self) -> str:
        return f"{{{self.responder_ns}}}{self.name}Response"


def _national(domain: str, name: str, version: int) -> Contract:
    return Contract(
        name=name,
        responder_ns=f"urn:riv:{domain}:{name}Responder:{version}",
        core_ns=f"urn:riv:{domain}:{version}",
        path=f"/{domain.replace(':', '/')}/{name}/{version}/rivtabp21",
    )


GET_PATIENT_DEMOGRAPHICS = Contract(
    name="GetPatientDemographics",
    responder_ns="urn:riv:ost:patient:GetPatientDemographicsResponder:1",
    core_ns="urn:riv:ost:patient:1",
    path="/ost/patient/GetPatientDemographics/1/rivtabp21",
)
GET_MEDICATION_HISTORY = _national(
    "clinicalprocess:activityprescription:actoutcome", "GetMedicationHistory", 2
)
GET_LABORATORY_ORDER_OUTCOME = _national(
    "clinicalprocess:healthcond:actoutcome", "GetLaboratoryOrderOutcome", 4
)
GET_CARE_CONTACTS = _national("clinicalprocess:logistics:logistics", "GetCareContacts", 3)
GET_CARE_DOCUMENTATION = _national(
    "clinicalprocess:healthcond:description", "GetCareDocumentation", 2
)

GET_DIAGNOSIS = _national("clinicalprocess:healthcond:description", "GetDiagnosis", 2)
GET_ALERT_INFORMATION = _national(
    "clinicalprocess:healthcond:description", "GetAlertInformation", 2
)
GET_VACCINATION_HISTORY = _national(
    "clinicalprocess:activityprescription:actoutcome", "GetVaccinationHistory", 2
)
GET_REFERRAL_OUTCOME = _national("clinicalprocess:healthcond:actoutcome", "GetReferralOutcome", 3)
GET_IMAGING_OUTCOME = _national("clinicalprocess:healthcond:actoutcome", "GetImagingOutcome", 1)
GET_CARE_PLANS = _national("clinicalprocess:logistics:logistics", "GetCarePlans", 2)
GET_FUNCTIONAL_STATUS = _national(
    "clinicalprocess:healthcond:description", "GetFunctionalStatus", 2
)
GET_MATERNITY_MEDICAL_HISTORY = _national(
    "clinicalprocess:healthcond:actoutcome", "GetMaternityMedicalHistory", 2
)

CONTRACTS: tuple[Contract, ...] = (
    GET_PATIENT_DEMOGRAPHICS,
    GET_MEDICATION_HISTORY,
    GET_LABORATORY_ORDER_OUTCOME,
    GET_CARE_CONTACTS,
    GET_CARE_DOCUMENTATION,
    GET_DIAGNOSIS,
    GET_ALERT_INFORMATION,
    GET_VACCINATION_HISTORY,
    GET_REFERRAL_OUTCOME,
    GET_IMAGING_OUTCOME,
    GET_CARE_PLANS,
    GET_FUNCTIONAL_STATUS,
    GET_MATERNITY_MEDICAL_HISTORY,
)
