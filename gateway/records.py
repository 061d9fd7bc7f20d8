"""The data boundary: every read of personal data goes through :class:`RecordReader`.

A reader is made for one principal. Each method resolves the person, asks the access
policy once, fetches and unifies the record, and filters it by the decision before
anything reaches a route. Routes hold no access logic of their own, so a new endpoint
cannot forget a check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adapters.base import PATIENT_COMPARTMENT_TYPES, FhirResource
from consent.decision import AccessDecision
from consent.policy import decide
from consent.principals import Principal
from fhir_profiles.identifiers import PersonIdentifier
from gateway.aggregate import Aggregator, SourceReport
from gateway.errors import Forbidden, NotFound
from gateway.merge import unify
from gateway.persons import PersonIndex


@dataclass(slots=True)
class ReadResult:
    patient: FhirResource
    resources: list[FhirResource]
    reports: list[SourceReport]


class RecordReader:
    """Reads one person's unified record on behalf of one principal."""

    def __init__(self, principal: Principal, persons: PersonIndex, aggregator: Aggregator) -> None:
        self._principal = principal
        self._persons = persons
        self._aggregator = aggregator

    def _authorise(self, person: PersonIdentifier) -> AccessDecision:
        decision = decide(self._principal, person)
        if not decision.allowed:
            raise Forbidden(f"access to this patient's data is not permitted ({decision.reason})")
        return decision

    async def _person(self, patient_id: str) -> PersonIdentifier:
        person = await self._persons.resolve(patient_id)
        if person is None:
            raise NotFound("no such patient")
        return person

    async def _read(
        self, person: PersonIdentifier, patient_id: str, types: Sequence[str]
    ) -> ReadResult:
        decision = self._authorise(person)
        wanted = [t for t in types if decision.may_read_type(t)]
        gathered = await self._aggregator.gather(person, wanted)
        record = unify(gathered, person, patient_id)
        resources = [
            r
            for r in record.resources
            if _source_of(r) not in decision.hidden_sources
            and decision.may_read_type(str(r.get("resourceType")))
        ]
        reports = [r for r in record.reports if r.source_id not in decision.hidden_sources]
        return ReadResult(record.patient, resources, reports)

    async def find_by_identifier(self, person: PersonIdentifier) -> ReadResult:
        """Patient search by identity number: the unified Patient, if any source knows it."""
        self._authorise(person)
        patient_id = await self._persons.remember(person)
        return await self._read(person, patient_id, ())

    async def patient(self, patient_id: str) -> ReadResult:
        """The unified Patient behind an id (with the per-source status)."""
        return await self._read(await self._person(patient_id), patient_id, ())

    async def search(self, resource_type: str, patient_id: str) -> ReadResult:
        """Every resource of one type for the patient."""
        person = await self._person(patient_id)
        return await self._read(person, patient_id, (resource_type,))

    async def everything(self, patient_id: str) -> ReadResult:
        """The patient and every resource of every served type."""
        person = await self._person(patient_id)
        return await self._read(person, patient_id, PATIENT_COMPARTMENT_TYPES)


def _source_of(resource: FhirResource) -> str:
    meta = resource.get("meta") or {}
    source = str(meta.get("source", ""))
    return source.removeprefix("urn:samlad:source:").split("#", 1)[0]
