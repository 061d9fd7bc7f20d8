"""Acting for another adult: a proxy by the person's grant (fullmakt), or a legal
representative (god man, förvaltare) from the relations register.

Whom a citizen may act for is listed here; whether they may read, and what, is decided by
:func:`consent.policy.decide` on every read like any other (:class:`RecordReader`), and
each read is logged as the proxy, on behalf of the person.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from adapters.base import FhirResource
from consent.principals import Citizen, Principal
from consent.relations import GuardianRegister, RegisterUnavailable
from consent.store import ConsentStore
from fhir_profiles.identifiers import PersonIdentifier
from gateway.access.persons import PersonIndex
from gateway.errors import Forbidden, NotFound, ServiceUnavailable
from store.tables import ConsentRecord


class _Services(Protocol):
    persons: PersonIndex
    consents: ConsentStore
    guardians: GuardianRegister

    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Relations:
    """What the relations register says of the asking citizen and the person."""

    guardian: bool = False
    representative: bool = False


async def relations_of(
    principal: Principal, person: PersonIdentifier, register: GuardianRegister
) -> Relations:
    """Whether the register names the asking citizen the person's guardian, or their
    legal representative (nothing for anyone else, or the person themselves); 503 if the
    register cannot be read."""
    if not isinstance(principal, Citizen) or principal.person == person:
        return Relations()
    try:
        return Relations(
            guardian=await register.is_guardian_of(principal.person, person),
            representative=await register.is_representative_of(principal.person, person),
        )
    except RegisterUnavailable as exc:
        raise ServiceUnavailable("the relations register is unavailable") from exc


def grants_to(
    principal: Principal, persons: PersonIndex, consents: Sequence[ConsentRecord]
) -> list[ConsentRecord]:
    """The person's proxy grants (``consents``, active or not) naming the asking citizen,
    by their opaque id."""
    if not isinstance(principal, Citizen):
        return []
    me = persons.id_for(principal.person)
    return [c for c in consents if c.grantee_type == "proxy" and c.grantee_hsa_id == me]


async def acting_for(
    principal: Citizen,
    services: _Services,
    read_patient: Callable[[str], Awaitable[FhirResource | None]],
) -> list[FhirResource]:
    """The citizen's own Patient, then each person they may act for now (by an active
    proxy grant, or as legal representative), each read by ``read_patient`` (the
    :class:`~gateway.access.reader.RecordReader`'s Patient read: decided and logged); one
    the citizen may not read is left out."""
    own = await services.persons.remember(principal.person)
    ids = [own, *await services.consents.proxied_patients(own, services.now())]
    try:
        represented = await services.guardians.represented_by(principal.person)
    except RegisterUnavailable as exc:
        raise ServiceUnavailable("the relations register is unavailable") from exc
    ids += [await services.persons.remember(person) for person in represented]
    patients: list[FhirResource] = []
    for patient_id in dict.fromkeys(ids):
        try:
            patient = await read_patient(patient_id)
        except (Forbidden, NotFound):
            continue
        if patient is not None:
            patients.append(patient)
    return patients
