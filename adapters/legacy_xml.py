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
GetMedicationHistory 2         MedicationRequest   ATC + NPL-id, dosage, treatment period
GetCareContacts 3              Encounter           contact code → ``class``, period, unit
GetCareDocumentation 2         DocumentReference   note text as a base64 text/plain attachment
=============================  ==================  ===========================================

Condition and Appointment (and any other type) are not offered by these services:
:meth:`LegacyXmlAdapter.search` returns ``[]`` for them.

Identity. The Patient id is an HMAC of the source id and the personnummer, so it reveals
nothing; the key is ``patient_id_secret`` from the dialect (ids then survive restarts) or
a random key per adapter. Because every request needs the personnummer, the adapter keeps
a bounded map from the ids it issued to the person (filled by :meth:`find_patient`); an id
it did not issue, or has evicted, raises ``SourceProtocolError``. Other resource ids are
UUIDv5s of the source id and the record's documentId, never raw upstream text.

Times. ``YYYYMMDDhhmmss`` is Swedish wall-clock time; it is written as ISO 8601 with the
Europe/Stockholm offset in force at that moment (``zoneinfo``), dates as ``YYYY-MM-DD``.

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

import base64
import hashlib
import hmac
import re
import secrets
import uuid
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped]
import httpx
import orjson
from defusedxml import DefusedXmlException
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from adapters.base import FhirResource
from adapters.config import SourceConfig, SourceConfigError
from adapters.errors import (
    SourceError,
    SourceProtocolError,
    SourceUnavailable,
)
from adapters.transport import exchange
from fhir_profiles.identifiers import (
    HSA_ID_SYSTEM,
    InvalidPersonIdentifier,
    PersonIdentifier,
    parse_person_identifier,
)
from fhir_profiles.record_status import approval_tag, nullified_tag

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
ADDRESSING_NS = "urn:riv:itintegration:registry:1"
SOAP_XML = "text/xml; charset=utf-8"
DEFAULT_MAX_RESPONSE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PATIENTS = 10_000

PERSONNUMMER_OID = "1.2.752.129.2.1.3.1"
SAMORDNINGSNUMMER_OID = "1.2.752.129.2.1.3.3"
LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
ATC_SYSTEM = "http://www.whocc.no/atc"
ICD10SE_SYSTEM = "http://hl7.org/fhir/sid/icd-10-se"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NULL_FLAVOR_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

#: Code-system OIDs with a canonical FHIR URI; any other OID becomes ``urn:oid:<oid>``.
_OID_SYSTEMS = {
    "1.2.752.129.2.2.3.1.1": ATC_SYSTEM,
    "1.2.752.116.1.1.1.1.3": ICD10SE_SYSTEM,
    "2.16.840.1.113883.6.1": LOINC_SYSTEM,
}
#: Units as Swedish labs print them → UCUM code. Unknown units keep their text, no code.
_UCUM = {
    "g/L": "g/L", "g/l": "g/L", "mmol/L": "mmol/L", "mmol/l": "mmol/L",
    "µmol/L": "umol/L", "umol/L": "umol/L", "μmol/L": "umol/L", "nmol/L": "nmol/L",
    "pmol/L": "pmol/L", "µkat/L": "ukat/L", "ukat/L": "ukat/L", "μkat/L": "ukat/L",
    "10^9/L": "10*9/L", "10^12/L": "10*12/L", "L/L": "L/L", "fL": "fL", "mg/L": "mg/L",
    "mmol/mol": "mmol/mol", "µg/L": "ug/L", "ug/L": "ug/L", "μg/L": "ug/L", "ng/L": "ng/L",
    "mIE/L": "m[IU]/L", "mIU/L": "m[IU]/L", "INR": "{INR}", "mL/min/1,73 m²": "mL/min/{1.73_m2}",
    "mg/dL": "mg/dL", "g/dL": "g/dL", "U/L": "U/L", "%": "%",
}  # fmt: skip
#: careContactCode (the national KV vårdkontakttyp, 1.2.752.129.2.2.2.25) → Encounter.class:
#: Besök, Telefon, Vårdtillfälle, Dagsjukvård (a short stay, v3 ActCode ``SS``) and Annan,
#: which says only "other" (v3 NullFlavor ``OTH``). The original coding stays in ``type``.
_CONTACT_CLASSES = {
    "1": (ACT_CODE_SYSTEM, "AMB", "ambulatory"),
    "2": (ACT_CODE_SYSTEM, "VR", "virtual"),
    "3": (ACT_CODE_SYSTEM, "IMP", "inpatient encounter"),
    "4": (ACT_CODE_SYSTEM, "SS", "short stay"),
    "5": (NULL_FLAVOR_SYSTEM, "OTH", "other"),
}
_UNKNOWN_CLASS = (NULL_FLAVOR_SYSTEM, "UNK", "unknown")
_CONTACT_STATUS = {
    "Avslutad": "finished",
    "Pågående": "in-progress",
    "Planerad": "planned",
    "Avbruten": "cancelled",
}
_PROGRESS = ("11506-3", "Progress note")
_NOTE = ("34109-9", "Note")
_NURSE = ("34746-8", "Nurse Note")
_SUMMARY = ("34133-9", "Summary of episode note")
_ADMISSION = ("47039-3", "Hospital Admission history and physical note")
#: clinicalDocumentNoteCode (code system 1.2.752.129.2.2.2.11) → the LOINC document type
#: added beside it: the national codes of GetCareDocumentation 2, the older national ones,
#: and Östjournal's own (mot, ssk, tel, vid, aku). The table is in docs/normalisation.md.
_NOTE_LOINC = {
    "utr": ("11488-4", "Consult note"),
    "atb": ("28570-0", "Procedure note"),
    "sam": _SUMMARY,
    "sao": _PROGRESS,
    "ins": _ADMISSION,
    "slu": _SUMMARY,
    "auf": _NOTE,
    "sva": _SUMMARY,
    "bes": _PROGRESS,
    "epi": ("18842-5", "Discharge summary"),
    "int": _ADMISSION,
    "dag": _PROGRESS,
    "ova": _NURSE,
    "ovs": _NURSE,
    "ovr": _NOTE,
    "mot": _PROGRESS,
    "ssk": _NURSE,
    "tel": _NOTE,
    "vid": _PROGRESS,
    "aku": ("34111-5", "Emergency department Note"),
}
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_PATIENT_ID = re.compile(r"^[a-f0-9]{40}$")
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*)){1,40}$")
_TIMESTAMP = re.compile(r"^\d{14}$")
_DAY = re.compile(r"^\d{8}$")
_NUMBER = re.compile(r"^(?P<cmp>[<>]=?)?\s*(?P<num>-?\d{1,15}(?:[.,]\d{1,15})?)$")
_SAFE_CODE = re.compile(r"^[A-Za-z_]{1,40}$")
_STOCKHOLM = ZoneInfo("Europe/Stockholm")
_ID_NAMESPACE = uuid.UUID("5d0b8f3e-6a1c-5e2d-9f47-0b8e2c1a7d64")


@dataclass(frozen=True)
class _Contract:
    name: str
    responder_ns: str
    core_ns: str
    path: str
    record: str

    @property
    def soap_action(self) -> str:
        return f'"{self.responder_ns}:{self.name}"'


def _national(domain: str, name: str, version: int, record: str) -> _Contract:
    return _Contract(
        name=name,
        responder_ns=f"urn:riv:{domain}:{name}Responder:{version}",
        core_ns=f"urn:riv:{domain}:{version}",
        path=f"/{domain.replace(':', '/')}/{name}/{version}/rivtabp21",
        record=record,
    )


_DEMOGRAPHICS = _Contract(
    name="GetPatientDemographics",
    responder_ns="urn:riv:ost:patient:GetPatientDemographicsResponder:1",
    core_ns="urn:riv:ost:patient:1",
    path="/ost/patient/GetPatientDemographics/1/rivtabp21",
    record="patient",
)
_LABORATORY = _national(
    "clinicalprocess:healthcond:actoutcome",
    "GetLaboratoryOrderOutcome",
    4,
    "laboratoryOrderOutcome",
)
_MEDICATION = _national(
    "clinicalprocess:activityprescription:actoutcome",
    "GetMedicationHistory",
    2,
    "medicationMedicalRecord",
)
_CONTACTS = _national("clinicalprocess:logistics:logistics", "GetCareContacts", 3, "careContact")
_DOCUMENTATION = _national(
    "clinicalprocess:healthcond:description", "GetCareDocumentation", 2, "careDocumentation"
)


class LegacyXmlDialect(BaseModel):
    """The ``[sources.dialect]`` settings a legacy-xml source understands; unknown keys fail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Sent as the RIVTA ``LogicalAddress`` header (usually the care provider's HSA-id).
    logical_address: str | None = Field(default=None, pattern=r"^[A-Za-z0-9\-.]{1,64}$")
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1024)
    #: Most Patient ids remembered; the least recently used is forgotten first.
    max_patients: int = Field(default=DEFAULT_MAX_PATIENTS, ge=1, le=10_000_000)
    #: HMAC key for Patient ids; unset means a random key per adapter instance.
    patient_id_secret: SecretStr | None = Field(default=None, min_length=16)


def parse_dialect(config: SourceConfig) -> LegacyXmlDialect:
    """Validate ``config.dialect`` for a legacy-xml source; raise SourceConfigError if invalid."""
    try:
        return LegacyXmlDialect.model_validate(config.dialect)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'dialect'}: {err['msg']}"
            for err in exc.errors()
        )
        message = f"source {config.id!r}: invalid legacy-xml dialect: {problems}"
        raise SourceConfigError(message) from exc


def swedish_datetime(text: str) -> str:
    """ISO 8601 with the Stockholm offset for Swedish wall-clock ``YYYYMMDDhhmmss``.

    Raises ValueError for anything else (the caller turns it into a protocol error).
    """
    text = text.strip()
    if not _TIMESTAMP.match(text):
        raise ValueError("not a YYYYMMDDhhmmss timestamp")
    moment = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=_STOCKHOLM)
    return moment.isoformat()


def swedish_date(text: str) -> str:
    """``YYYY-MM-DD`` for ``YYYYMMDD``; ValueError for anything else."""
    text = text.strip()
    if not _DAY.match(text):
        raise ValueError("not a YYYYMMDD date")
    return date(int(text[:4]), int(text[4:6]), int(text[6:])).isoformat()


def parse_xml(body: bytes) -> ET.Element:
    """Parse untrusted XML with DTDs, entities and external references refused.

    Raises ValueError (``ET.ParseError`` or a defusedxml error) for anything unusable.
    """
    root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    if not isinstance(root, ET.Element):  # pragma: no cover - defusedxml returns Elements
        raise ValueError("not an XML element")
    return root


class _Record:
    """One record element, read in its contract's core namespace; errors name fields only."""

    def __init__(self, element: ET.Element, core_ns: str, what: str) -> None:
        self.element = element
        self.ns = core_ns
        self.what = what

    def _path(self, path: str) -> str:
        return "/".join(f"{{{self.ns}}}{part}" for part in path.split("/"))

    def child(self, path: str) -> _Record | None:
        found = self.element.find(self._path(path))
        return None if found is None else _Record(found, self.ns, self.what)

    def children(self, path: str) -> list[_Record]:
        return [_Record(e, self.ns, self.what) for e in self.element.findall(self._path(path))]

    def text(self, path: str) -> str | None:
        found = self.element.find(self._path(path))
        if found is None or found.text is None or not found.text.strip():
            return None
        return found.text.strip()

    def required(self, path: str) -> str:
        value = self.text(path)
        if value is None:
            raise SourceProtocolError(f"{self.what}: record without {path}")
        return value

    def when(self, path: str) -> str | None:
        value = self.text(path)
        if value is None:
            return None
        try:
            return swedish_datetime(value)
        except ValueError as exc:
            raise SourceProtocolError(f"{self.what}: {path} is not YYYYMMDDhhmmss") from exc

    def day(self, path: str) -> str | None:
        value = self.text(path)
        if value is None:
            return None
        try:
            return swedish_date(value)
        except ValueError as exc:
            raise SourceProtocolError(f"{self.what}: {path} is not a YYYYMMDD date") from exc

    def coding(self, path: str) -> FhirResource | None:
        holder = self.child(path)
        if holder is None:
            return None
        code = holder.required("code")
        coding: FhirResource = {}
        system = holder.text("codeSystem")
        if system is not None:
            coding["system"] = _system(system, self.what)
        coding["code"] = code
        display = holder.text("displayName")
        if display is not None:
            coding["display"] = display
        return coding


def _system(oid: str, what: str) -> str:
    if not _OID.match(oid):
        raise SourceProtocolError(f"{what}: code system is not an OID")
    return _OID_SYSTEMS.get(oid, f"urn:oid:{oid}")


def _hsa(value: str, display: str | None) -> FhirResource:
    ref: FhirResource = {"identifier": {"system": HSA_ID_SYSTEM, "value": value}}
    if display:
        ref["display"] = display
    return ref


def _number(text: str, what: str) -> tuple[str | None, int | float]:
    match = _NUMBER.match(text.strip())
    if match is None:
        raise SourceProtocolError(f"{what}: value is not a number")
    number = match["num"].replace(",", ".")
    value: int | float = float(number) if "." in number else int(number)
    return match["cmp"], value


def _quantity(value: int | float, unit: str | None) -> FhirResource:
    quantity: FhirResource = {"value": value}
    if unit:
        quantity["unit"] = unit
        code = _UCUM.get(unit)
        if code is not None:
            quantity["system"] = UCUM_SYSTEM
            quantity["code"] = code
    return quantity


class LegacyXmlAdapter:
    """A RIVTA-style SOAP 1.1 source, reached through an injected ``httpx.AsyncClient``."""

    kind = "legacy-xml"

    def __init__(self, config: SourceConfig, client: httpx.AsyncClient) -> None:
        self.source_id = config.id
        self.dialect = parse_dialect(config)
        self._config = config
        self._client = client
        self._base = config.base_url.rstrip("/")
        secret = self.dialect.patient_id_secret
        self._key = (
            secret.get_secret_value().encode() if secret is not None else secrets.token_bytes(32)
        )
        self._namespace = uuid.uuid5(_ID_NAMESPACE, config.id)
        self._people: OrderedDict[str, PersonIdentifier] = OrderedDict()

    @classmethod
    def check_config(cls, config: SourceConfig) -> None:
        """Validate the dialect settings without building anything (start-up check)."""
        parse_dialect(config)

    def __repr__(self) -> str:
        return f"LegacyXmlAdapter(source_id={self.source_id!r})"

    # -- the SourceAdapter interface -------------------------------------------------

    async def find_patient(self, person: PersonIdentifier) -> FhirResource | None:
        """Ask GetPatientDemographics for ``person``; None if the source has no record.

        The answer must carry the asked-for identifier; more than one person is an error.
        """
        what = f"{self.source_id}: Patient search"
        response = await self._call(_DEMOGRAPHICS, person, what)
        records = self._records(response, _DEMOGRAPHICS, what)
        if not records:
            return None
        if len(records) > 1:
            raise SourceProtocolError(f"{what}: more than one person in the answer")
        record = records[0]
        self._check_person(record, person, what)
        patient_id = self.patient_id(person)
        self._remember(patient_id, person)
        return _patient(record, patient_id, person)

    async def search(self, resource_type: str, patient_id: str) -> list[FhirResource]:
        """Return every ``resource_type`` resource of ``patient_id`` (from find_patient).

        Types the service does not offer (Condition, Appointment, ...) give ``[]``.
        """
        if not _RESOURCE_TYPE.match(resource_type):
            raise ValueError("not a FHIR resource type name")
        mapping = _MAPPINGS.get(resource_type)
        if mapping is None:
            return []
        person = self._person(patient_id)
        contract, build = mapping
        what = f"{self.source_id}: {resource_type} search"
        response = await self._call(contract, person, what)
        resources: list[FhirResource] = []
        for record in self._records(response, contract, what):
            header = record.child(f"{contract.record}Header")
            if header is None:
                raise SourceProtocolError(f"{what}: record without header")
            self._check_person(header, person, what)
            subject = {"reference": f"Patient/{patient_id}"}
            tags = _record_tags(header)
            for resource in build(self, record, header, subject):
                resource["meta"] = {"tag": [dict(tag) for tag in tags]}
                resources.append(resource)
        # The builders share small parts (subject, performer) between resources; callers own
        # and edit what adapters return, so hand out independent copies.
        fresh: list[FhirResource] = orjson.loads(orjson.dumps(resources))
        return fresh

    async def aclose(self) -> None:
        """Forget the issued Patient ids (the injected client belongs to the caller)."""
        self._people.clear()

    # -- identity --------------------------------------------------------------------

    def patient_id(self, person: PersonIdentifier) -> str:
        """The opaque Patient id this adapter gives ``person`` (an HMAC, not the number)."""
        message = f"{self.source_id}\x00{person.value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:40]

    def _remember(self, patient_id: str, person: PersonIdentifier) -> None:
        self._people[patient_id] = person
        self._people.move_to_end(patient_id)
        while len(self._people) > self.dialect.max_patients:
            self._people.popitem(last=False)

    def _person(self, patient_id: str) -> PersonIdentifier:
        person = self._people.get(patient_id) if _PATIENT_ID.match(patient_id) else None
        if person is None:
            raise SourceProtocolError(
                f"{self.source_id}: unknown Patient id (not issued by find_patient, or forgotten)"
            )
        self._people.move_to_end(patient_id)
        return person

    def _resource_id(self, *parts: str) -> str:
        return str(uuid.uuid5(self._namespace, "/".join(parts)))

    def _check_person(self, record: _Record, person: PersonIdentifier, what: str) -> None:
        value = record.required("patientId/id")
        try:
            same = parse_person_identifier(value) == person
        except InvalidPersonIdentifier:
            same = False
        if not same:
            raise SourceProtocolError(f"{what}: a record belongs to another person")

    # -- the exchange ----------------------------------------------------------------

    def _envelope(self, contract: _Contract, person: PersonIdentifier) -> bytes:
        envelope = ET.Element(f"{{{SOAP_ENV_NS}}}Envelope")
        header = ET.SubElement(envelope, f"{{{SOAP_ENV_NS}}}Header")
        if self.dialect.logical_address is not None:
            address = ET.SubElement(header, f"{{{ADDRESSING_NS}}}LogicalAddress")
            address.text = self.dialect.logical_address
        body = ET.SubElement(envelope, f"{{{SOAP_ENV_NS}}}Body")
        request = ET.SubElement(body, f"{{{contract.responder_ns}}}{contract.name}")
        patient = ET.SubElement(request, f"{{{contract.responder_ns}}}patientId")
        ET.SubElement(patient, f"{{{contract.core_ns}}}id").text = person.value
        oid = SAMORDNINGSNUMMER_OID if person.is_samordningsnummer else PERSONNUMMER_OID
        ET.SubElement(patient, f"{{{contract.core_ns}}}type").text = oid
        return bytes(ET.tostring(envelope, encoding="utf-8", xml_declaration=True))

    async def _call(self, contract: _Contract, person: PersonIdentifier, what: str) -> ET.Element:
        """POST one request; return the contract's response element or raise a SourceError."""
        request = self._client.build_request(
            "POST",
            f"{self._base}{contract.path}",
            content=self._envelope(contract, person),
            headers={
                "Content-Type": SOAP_XML,
                "Accept": "text/xml",
                "SOAPAction": contract.soap_action,
            },
        )
        # SOAP 1.1 sends Faults with 500: that body is read to tell what went wrong.
        status, body = await exchange(
            self._client,
            request,
            what,
            limit=self.dialect.max_response_bytes,
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

    def _records(self, answer: ET.Element, contract: _Contract, what: str) -> list[_Record]:
        tag = f"{{{contract.responder_ns}}}{contract.record}"
        return [_Record(element, contract.core_ns, what) for element in answer.findall(tag)]

    # -- mapping ---------------------------------------------------------------------

    def _observations(
        self, record: _Record, header: _Record, subject: FhirResource
    ) -> list[FhirResource]:
        what = record.what
        body = record.child("laboratoryOrderOutcomeBody")
        if body is None:
            raise SourceProtocolError(f"{what}: record without body")
        document_id = header.required("documentId")
        status = "final" if body.text("resultType") == "DEF" else "preliminary"
        issued = body.when("registrationTime")
        unit = header.child("accountableHealthcareProfessional/healthcareProfessionalOrgUnit")
        performer = None
        if unit is not None:
            performer = _hsa(unit.required("orgUnitHSAId"), unit.text("orgUnitName"))
        found = []
        for analysis in body.children("analysis"):
            analysis_id = analysis.required("analysisId")
            coding = analysis.coding("analysisCode")
            if coding is None:
                raise SourceProtocolError(f"{what}: analysis without analysisCode")
            code: FhirResource = {"coding": [coding]}
            name = analysis.text("analysisText")
            if name is not None:
                code["text"] = name
            observation: FhirResource = {
                "resourceType": "Observation",
                "id": self._resource_id("Observation", document_id, analysis_id),
                "status": status,
                "category": [
                    {
                        "coding": [
                            {
                                "system": OBSERVATION_CATEGORY_SYSTEM,
                                "code": "laboratory",
                                "display": "Laboratory",
                            }
                        ]
                    }
                ],
                "code": code,
                "subject": subject,
            }
            effective = analysis.when("analysisTime/start")
            if effective is not None:
                observation["effectiveDateTime"] = effective
            if issued is not None:
                observation["issued"] = issued
            if performer is not None:
                observation["performer"] = [performer]
            outcome = analysis.child("analysisOutcome")
            if outcome is not None:
                _add_outcome(observation, outcome)
            found.append(observation)
        return found

    def _medication_requests(
        self, record: _Record, header: _Record, subject: FhirResource
    ) -> list[FhirResource]:
        what = record.what
        prescription = record.child("medicationMedicalRecordBody/medicationPrescription")
        if prescription is None:
            raise SourceProtocolError(f"{what}: record without medicationPrescription")
        drug = prescription.child("drug")
        if drug is None:
            raise SourceProtocolError(f"{what}: prescription without drug")
        codings = [c for c in (drug.coding("atcCode"), drug.coding("nplId")) if c is not None]
        medication: FhirResource = {"coding": codings}
        product = drug.text("productName")
        if product is not None:
            medication["text"] = product
        status = {"Active": "active", "Inactive": "completed"}.get(
            prescription.text("prescriptionStatus") or "", "unknown"
        )
        request: FhirResource = {
            "resourceType": "MedicationRequest",
            "id": self._resource_id(
                "MedicationRequest",
                header.required("documentId"),
                prescription.required("prescriptionId"),
            ),
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": medication,
            "subject": subject,
        }
        authored = prescription.when("prescriber/authorTime") or header.when(
            "accountableHealthcareProfessional/authorTime"
        )
        if authored is not None:
            request["authoredOn"] = authored
        prescriber = prescription.text("prescriber/healthcareProfessionalHSAId")
        if prescriber is not None:
            request["requester"] = _hsa(
                prescriber, prescription.text("prescriber/healthcareProfessionalName")
            )
        reason = prescription.coding("prescriptionReason/reason")
        if reason is not None:
            display = reason.pop("display", None)
            reason_code: FhirResource = {"coding": [reason]}
            if display:
                reason_code["text"] = display
            request["reasonCode"] = [reason_code]
        dosage = drug.text("dosageInstruction")
        if dosage is not None:
            request["dosageInstruction"] = [{"text": dosage}]
        start = prescription.day("startOfTreatment")
        end = prescription.day("endOfTreatment")
        if start or end:
            period = {k: v for k, v in (("start", start), ("end", end)) if v}
            request["dispenseRequest"] = {"validityPeriod": period}
        return [request]

    def _encounters(
        self, record: _Record, header: _Record, subject: FhirResource
    ) -> list[FhirResource]:
        what = record.what
        body = record.child("careContactBody")
        if body is None:
            raise SourceProtocolError(f"{what}: record without body")
        contact_code = body.coding("careContactCode")
        code = contact_code["code"] if contact_code else ""
        system, act, act_display = _CONTACT_CLASSES.get(code, _UNKNOWN_CLASS)
        encounter_class = {"system": system, "code": act, "display": act_display}
        encounter: FhirResource = {
            "resourceType": "Encounter",
            "id": self._resource_id("Encounter", header.required("documentId")),
            "status": _CONTACT_STATUS.get(body.text("careContactStatus") or "", "unknown"),
            "class": encounter_class,
        }
        if contact_code is not None:
            encounter["type"] = [
                {"coding": [contact_code], "text": contact_code.get("display", code)}
            ]
        encounter["subject"] = subject
        author = header.text("accountableHealthcareProfessional/healthcareProfessionalHSAId")
        if author is not None:
            name = header.text("accountableHealthcareProfessional/healthcareProfessionalName")
            encounter["participant"] = [{"individual": _hsa(author, name)}]
        period = {
            key: value
            for key, value in (
                ("start", body.when("careContactTimePeriod/start")),
                ("end", body.when("careContactTimePeriod/end")),
            )
            if value
        }
        if period:
            encounter["period"] = period
        reason = body.child("careContactReason")
        if reason is not None:
            reason_code: FhirResource = {}
            reason_icd = reason.text("code")
            if reason_icd is not None:
                system = _system(reason.required("codeSystem"), what)
                reason_code["coding"] = [{"system": system, "code": reason_icd}]
            text = reason.text("text")
            if text is not None:
                reason_code["text"] = text
            if reason_code:
                encounter["reasonCode"] = [reason_code]
        unit = body.child("careContactOrgUnit")
        if unit is not None:
            encounter["serviceProvider"] = _hsa(
                unit.required("orgUnitHSAId"), unit.text("orgUnitName")
            )
        return [encounter]

    def _document_references(
        self, record: _Record, header: _Record, subject: FhirResource
    ) -> list[FhirResource]:
        what = record.what
        note = record.child("careDocumentationBody/clinicalDocumentNote")
        if note is None:
            raise SourceProtocolError(f"{what}: record without clinicalDocumentNote")
        text = note.text("clinicalDocumentNoteText")
        if text is None:
            # A note without text (e.g. a scanned attachment elsewhere) shows nothing here.
            return []
        local = note.coding("clinicalDocumentNoteCode")
        title = note.text("clinicalDocumentNoteTitle") or (local or {}).get("display")
        codings = []
        if local is not None and local["code"] in _NOTE_LOINC:
            loinc, loinc_display = _NOTE_LOINC[local["code"]]
            codings.append({"system": LOINC_SYSTEM, "code": loinc, "display": loinc_display})
        if local is not None:
            codings.append(local)
        doc_type: FhirResource = {"coding": codings}
        if title:
            doc_type["text"] = title
        author_path = "accountableHealthcareProfessional"
        written = header.when(f"{author_path}/authorTime")
        signed = header.when("legalAuthenticator/signatureTime")
        document: FhirResource = {
            "resourceType": "DocumentReference",
            "id": self._resource_id("DocumentReference", header.required("documentId")),
            "status": "current",
            "docStatus": "final" if signed else "preliminary",
            "type": doc_type,
            "subject": subject,
        }
        if written is not None:
            document["date"] = written
        authors = []
        author = header.text(f"{author_path}/healthcareProfessionalHSAId")
        if author is not None:
            authors.append(_hsa(author, header.text(f"{author_path}/healthcareProfessionalName")))
        unit = header.child(f"{author_path}/healthcareProfessionalOrgUnit")
        custodian = None
        if unit is not None:
            custodian = _hsa(unit.required("orgUnitHSAId"), unit.text("orgUnitName"))
            authors.append(custodian)
        if authors:
            document["author"] = authors
        if custodian is not None:
            document["custodian"] = custodian
            if title:
                document["description"] = f"{title}, {custodian.get('display', '')}".rstrip(", ")
        attachment: FhirResource = {
            "contentType": "text/plain; charset=utf-8",
            "language": "sv",
            "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
        }
        if title:
            attachment["title"] = title
        if written is not None:
            attachment["creation"] = written
        document["content"] = [{"attachment": attachment}]
        contact_id = header.text("careContactId")
        if contact_id is not None:
            encounter_id = self._resource_id("Encounter", contact_id)
            document["context"] = {"encounter": [{"reference": f"Encounter/{encounter_id}"}]}
        return [document]


_Build = Callable[[LegacyXmlAdapter, _Record, _Record, FhirResource], list[FhirResource]]

_MAPPINGS: dict[str, tuple[_Contract, _Build]] = {
    "Observation": (_LABORATORY, LegacyXmlAdapter._observations),
    "MedicationRequest": (_MEDICATION, LegacyXmlAdapter._medication_requests),
    "Encounter": (_CONTACTS, LegacyXmlAdapter._encounters),
    "DocumentReference": (_DOCUMENTATION, LegacyXmlAdapter._document_references),
}

#: The FHIR types this adapter can produce from a legacy-xml source.
SUPPORTED_TYPES: tuple[str, ...] = tuple(_MAPPINGS)


def _add_outcome(observation: FhirResource, outcome: _Record) -> None:
    what = outcome.what
    unit = outcome.text("outcomeUnit")
    raw = outcome.text("outcomeValue")
    if raw is not None:
        comparator, value = _number(raw, what)
        quantity = _quantity(value, unit)
        if comparator is not None:
            quantity = {"value": value, "comparator": comparator, **quantity}
        observation["valueQuantity"] = quantity
    interval = outcome.child("referenceInterval")
    low = high = None
    if interval is not None:
        low_text, high_text = interval.text("low"), interval.text("high")
        low = _number(low_text, what)[1] if low_text is not None else None
        high = _number(high_text, what)[1] if high_text is not None else None
    flagged = outcome.text("pathologicalFlag") == "true"
    if flagged and raw is not None:
        value = observation["valueQuantity"]["value"]
        if high is not None and value > high:
            flag = ("H", "High")
        elif low is not None and value < low:
            flag = ("L", "Low")
        else:
            flag = ("A", "Abnormal")
        observation["interpretation"] = [
            {"coding": [{"system": INTERPRETATION_SYSTEM, "code": flag[0], "display": flag[1]}]}
        ]
    if low is not None or high is not None:
        shown = unit or ""
        reference: FhirResource = {}
        if low is not None:
            reference["low"] = _quantity(low, unit)
        if high is not None:
            reference["high"] = _quantity(high, unit)
        if low is not None and high is not None:
            reference["text"] = f"{low}-{high} {shown}".strip()
        elif high is not None:
            reference["text"] = f"<{high} {shown}".strip()
        else:
            reference["text"] = f">{low} {shown}".strip()
        observation["referenceRange"] = [reference]


def _patient(record: _Record, patient_id: str, person: PersonIdentifier) -> FhirResource:
    patient: FhirResource = {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [{"use": "official", "system": person.system, "value": person.value}],
        "active": True,
    }
    given, family = record.text("givenName"), record.text("familyName")
    if given or family:
        name: FhirResource = {"use": "official"}
        if family:
            name["family"] = family
        if given:
            name["given"] = [given]
        name["text"] = " ".join(part for part in (given, family) if part)
        patient["name"] = [name]
    phone = record.text("phone")
    if phone is not None:
        patient["telecom"] = [{"system": "phone", "value": phone, "use": "mobile"}]
    patient["gender"] = {"M": "male", "K": "female"}.get(record.text("gender") or "", "unknown")
    birth = record.day("birthDate")
    if birth is not None:
        patient["birthDate"] = birth
    address = record.child("address")
    if address is not None:
        home: FhirResource = {"use": "home"}
        street = address.text("street")
        if street:
            home["line"] = [street]
        for key, path in (("postalCode", "postalCode"), ("city", "city")):
            value = address.text(path)
            if value:
                home[key] = value
        home["country"] = "SE"
        patient["address"] = [home]
    if record.text("protectedIdentity") == "true":
        # Skyddad identitet: mark the record restricted and withhold contact details.
        patient["meta"] = {
            "security": [{"system": CONFIDENTIALITY_SYSTEM, "code": "R", "display": "restricted"}]
        }
        patient.pop("address", None)
        patient.pop("telecom", None)
    return patient


def _record_tags(header: _Record) -> list[FhirResource]:
    """The header's ``approvedForPatient`` and ``nullified`` as ``meta.tag``s.

    ``approvedForPatient`` other than ``true``/``false`` (or missing) becomes ``unknown``,
    which holds the record back from the patient like ``false`` does. ``nullified`` other
    than ``false`` (or missing) counts as nullified. The nullification reason is free text
    that nobody is shown; it is not carried.
    """
    approved = {"true": True, "false": False}.get(header.text("approvedForPatient") or "")
    tags = [approval_tag(approved)]
    nullified = header.text("nullified")
    if nullified is not None and nullified != "false":
        tags.append(nullified_tag())
    return tags


def _fault_error(fault: ET.Element, what: str) -> SourceError:
    """Client faults are ours to fix; Server faults may pass. The faultstring is dropped."""
    code = (fault.findtext("faultcode") or "").strip().rpartition(":")[2]
    if code == "Client":
        return SourceProtocolError(f"{what}: SOAP Fault (Client)")
    shown = code if _SAFE_CODE.match(code) else "?"
    return SourceUnavailable(f"{what}: SOAP Fault ({shown})")


def _check_result(answer: ET.Element, contract: _Contract, what: str) -> None:
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


__all__ = [
    "SUPPORTED_TYPES",
    "LegacyXmlAdapter",
    "LegacyXmlDialect",
    "parse_dialect",
    "parse_xml",
    "swedish_date",
    "swedish_datetime",
]
