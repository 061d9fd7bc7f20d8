"""What the policy is told of one person for one principal (:class:`AccessFacts`): the
person's standing, read in one statement (:func:`consent.standing.read_standing`), what
the relations register says of the asker and the person, and the proxy grants naming the
asker. Any failure to know them is a 503, never a guess."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from consent.policy import AccessFacts
from consent.principals import Citizen, Clinician, Principal
from consent.relations import GuardianRegister
from consent.standing import Standing
from consent.store import ConsentStore
from fhir_profiles.identifiers import PersonIdentifier
from fhir_profiles.own_data import OWN_ONLY_TYPES
from fhir_profiles.resource_types import RECORD_TYPES
from gateway.access.persons import PersonIndex
from gateway.access.proxies import grants_to, relations_of
from gateway.settings import Settings

#: Every type a principal can be granted read access to through the record (the own
#: source's own types too).
READABLE_TYPES = RECORD_TYPES | frozenset(OWN_ONLY_TYPES)


class FactServices(Protocol):
    """What gathering the facts needs of the process's long-lived parts."""

    settings: Settings
    persons: PersonIndex
    consents: ConsentStore
    guardians: GuardianRegister

    def now(self) -> datetime:
        """The time access is decided at (a consent's or proxy grant's period)."""
        ...


async def gather_facts(
    principal: Principal, services: FactServices, person: PersonIdentifier, patient_id: str
) -> tuple[AccessFacts, Standing]:
    """The facts the policy decides on, and the person's standing they were read from
    (which also says whether their own source holds anything and what they asked to be
    told of)."""
    now = services.now()
    is_self = isinstance(principal, Citizen) and principal.person == person
    relations = await relations_of(principal, person, services.guardians)
    clinician = principal.hsa_id if isinstance(principal, Clinician) else None
    standing = await services.consents.standing(patient_id, clinician, now)
    # A citizen's own choices do not bind their own reading; another citizen's reading is
    # bound by the person's guardian blocks or proxy grants.
    consents = () if is_self else standing.consents
    citizen = isinstance(principal, Citizen)  # seals bind only what citizens read online
    facts = AccessFacts(
        person=person,
        patient_id=patient_id,
        now=now,
        consents=consents,
        blocks=() if is_self else standing.blocks,
        emergency=None if is_self else standing.emergency,
        guardian=relations.guardian,
        served_types=READABLE_TYPES,
        ages=services.settings.citizen_ages,
        seals=standing.seals if citizen else (),
        exclusions=services.settings.online_exclusions,
        proxy_grants=grants_to(principal, services.persons, consents),
        representative=relations.representative,
    )
    return facts, standing
