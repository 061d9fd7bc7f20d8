"""The legacy-xml adapter itself: Patient ids, the person behind each, and one search per
FHIR type, each answered by one RIV-TA contract (see :mod:`adapters.legacy_xml`)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Callable

import httpx
import orjson

from adapters.base import FhirResource
from adapters.config import SourceConfig
from adapters.errors import SourceProtocolError
from adapters.legacy_xml.alerts import allergy_intolerances, flags
from adapters.legacy_xml.careplans import care_plans
from adapters.legacy_xml.contacts import encounters
from adapters.legacy_xml.diagnosis import conditions
from adapters.legacy_xml.dialect import parse_dialect
from adapters.legacy_xml.documentation import document_references
from adapters.legacy_xml.functional import functional_observations
from adapters.legacy_xml.imaging import imaging_reports
from adapters.legacy_xml.laboratory import lab_reports, observations
from adapters.legacy_xml.maternity import maternity_observations
from adapters.legacy_xml.medication import medication_requests
from adapters.legacy_xml.patient import patient
from adapters.legacy_xml.records import Record, record_tags
from adapters.legacy_xml.referrals import referral_reports, service_requests
from adapters.legacy_xml.soap import (
    ALERTS,
    CARE_PLANS,
    CONTACTS,
    DEMOGRAPHICS,
    DIAGNOSIS,
    DOCUMENTATION,
    FUNCTIONAL_STATUS,
    IMAGING,
    LABORATORY,
    MATERNITY,
    MEDICATION,
    REFERRALS,
    VACCINATIONS,
    Contract,
    answer_records,
    call,
)
from adapters.legacy_xml.vaccination import immunizations
from fhir_profiles.identifiers import (
    InvalidPersonIdentifier,
    PersonIdentifier,
    parse_person_identifier,
)

_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_PATIENT_ID = re.compile(r"^[a-f0-9]{40}$")
_ID_NAMESPACE = uuid.UUID("5d0b8f3e-6a1c-5e2d-9f47-0b8e2c1a7d64")

#: Builds a record's resources from it, its header, the subject reference and the id namespace.
_Build = Callable[[Record, Record, FhirResource, uuid.UUID], list[FhirResource]]

#: Each FHIR type and the contracts it is read from, with the builder for each: a type may
#: come from several contracts, and one contract may give several types.
_MAPPINGS: dict[str, tuple[tuple[Contract, _Build], ...]] = {
    "Observation": (
        (LABORATORY, observations),
        (FUNCTIONAL_STATUS, functional_observations),
        (MATERNITY, maternity_observations),
    ),
    "MedicationRequest": ((MEDICATION, medication_requests),),
    "Encounter": ((CONTACTS, encounters),),
    "DocumentReference": ((DOCUMENTATION, document_references),),
    "Condition": ((DIAGNOSIS, conditions),),
    "AllergyIntolerance": ((ALERTS, allergy_intolerances),),
    "Flag": ((ALERTS, flags),),
    "Immunization": ((VACCINATIONS, immunizations),),
    "DiagnosticReport": (
        (LABORATORY, lab_reports),
        (REFERRALS, referral_reports),
        (IMAGING, imaging_reports),
    ),
    "ServiceRequest": ((REFERRALS, service_requests),),
    "CarePlan": ((CARE_PLANS, care_plans),),
}

#: The FHIR types this adapter can produce from a legacy-xml source.
SUPPORTED_TYPES: tuple[str, ...] = tuple(_MAPPINGS)


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
        records = await self._call(DEMOGRAPHICS, person, what)
        if not records:
            return None
        if len(records) > 1:
            raise SourceProtocolError(f"{what}: more than one person in the answer")
        record = records[0]
        self._check_person(record, person, what)
        patient_id = self.patient_id(person)
        self._remember(patient_id, person)
        return patient(record, patient_id, person)

    async def search(self, resource_type: str, patient_id: str) -> list[FhirResource]:
        """Return every ``resource_type`` resource of ``patient_id`` (from find_patient).

        Types the service does not offer (Appointment, ...) give ``[]``. A type read from
        several contracts asks them all at once; any failure fails the search.
        """
        if not _RESOURCE_TYPE.match(resource_type):
            raise ValueError("not a FHIR resource type name")
        mappings = _MAPPINGS.get(resource_type)
        if mappings is None:
            return []
        person = self._person(patient_id)
        what = f"{self.source_id}: {resource_type} search"
        subject = {"reference": f"Patient/{patient_id}"}
        answers = await asyncio.gather(
            *(self._call(contract, person, what) for contract, _ in mappings),
            return_exceptions=True,
        )
        resources: dict[str, FhirResource] = {}
        for (contract, build), answer in zip(mappings, answers, strict=True):
            if isinstance(answer, BaseException):
                raise answer
            for record in answer:
                header = record.child(f"{contract.record}Header")
                if header is None:
                    raise SourceProtocolError(f"{what}: record without header")
                self._check_person(header, person, what)
                tags = record_tags(header)
                for resource in build(record, header, subject, self._namespace):
                    resource["meta"] = {"tag": [dict(tag) for tag in tags]}
                    # Records can name one resource twice (two answers to one referral):
                    # it is given once, as the later record has it.
                    resources.pop(resource["id"], None)
                    resources[resource["id"]] = resource
        # The builders share small parts (subject, performer) between resources; callers own
        # and edit what adapters return, so hand out independent copies.
        fresh: list[FhirResource] = orjson.loads(orjson.dumps(list(resources.values())))
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

    def _check_person(self, record: Record, person: PersonIdentifier, what: str) -> None:
        value = record.required("patientId/id")
        try:
            same = parse_person_identifier(value) == person
        except InvalidPersonIdentifier:
            same = False
        if not same:
            raise SourceProtocolError(f"{what}: a record belongs to another person")

    # -- the exchange ----------------------------------------------------------------

    async def _call(self, contract: Contract, person: PersonIdentifier, what: str) -> list[Record]:
        """One request for ``person``; the answer's records, or a SourceError."""
        answer = await call(self._client, self._base, self.dialect, contract, person, what)
        return answer_records(answer, contract, what)
