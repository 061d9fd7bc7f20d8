"""Nödåtkomst: a clinician opens a record without consent, stating why, behind the same
boundary as reads (decided by :func:`consent.policy.decide_emergency_open`, every attempt
logged)."""

from __future__ import annotations

from datetime import timedelta

from consent.policy import decide_emergency_open
from consent.principals import Clinician, Principal
from fhir_profiles.identifiers import PersonIdentifier
from gateway.access.facts import READABLE_TYPES
from gateway.access.reader import RecordReader, RecordServices
from gateway.errors import Forbidden
from store.tables import EmergencyAccess


class EmergencyOpening:
    """Opening emergency access to one patient's record, for one principal."""

    def __init__(self, principal: Principal, services: RecordServices) -> None:
        self._principal = principal
        self._services = services
        self._reader = RecordReader(principal, services)

    async def check_opener(self, patient_id: str) -> None:
        """Refuse (403, logged) whoever may not open emergency access whatever reason they
        state: not a clinician, or without ``user/`` read scopes. Routes call it before
        reading the request body, so such a request is refused whatever its body."""
        await self._reader.person(patient_id)
        decision = decide_emergency_open(self._principal, "", READABLE_TYPES)
        if not decision.allowed:
            await self._reader.log(decision, patient_id, "emergency-open", [])
            raise Forbidden(f"emergency access is not permitted ({decision.reason})")

    def check_role(self) -> None:
        """Refuse (403) whoever may not open emergency access whatever reason they state,
        before the body names the patient: such a refusal is in no patient's log, as the
        body naming them is never read."""
        decision = decide_emergency_open(self._principal, "", READABLE_TYPES)
        if not decision.allowed:
            raise Forbidden(f"emergency access is not permitted ({decision.reason})")

    async def patient_of(self, person: PersonIdentifier) -> str:
        """The unified patient id of the person a clinician names by identity number (a
        person the gateway has not seen yet is remembered, as a search would)."""
        return await self._services.persons.remember(person)

    async def open(
        self, patient_id: str, reason: str, block_override_reason: str | None
    ) -> EmergencyAccess:
        """Open it: the access lasts ``emergency_access_hours``; every read during it is
        flagged in the log. Blocked data stays hidden unless the law's conditions for
        reading it are recorded in ``block_override_reason``. The opening and its log
        entry are written in one transaction. ``reason`` and ``block_override_reason`` are
        as :func:`consent.reasons.stated_reason` keeps them (the route applies it).
        """
        reader = self._reader
        await reader.person(patient_id)  # unknown ids are refused before anything is recorded
        principal = self._principal
        decision = decide_emergency_open(principal, reason, READABLE_TYPES)
        if not decision.allowed or not isinstance(principal, Clinician):
            await reader.log(decision, patient_id, "emergency-open", [])
            raise Forbidden(f"emergency access is not permitted ({decision.reason})")
        settings = self._services.settings
        logged_as = reader.entry(decision, patient_id, "emergency-open", [])
        return await self._services.consents.open_emergency(
            patient_id,
            principal.hsa_id,
            principal.care_unit_hsa_id,
            principal.care_provider_hsa_id,
            reason,
            block_override_reason,
            timedelta(hours=settings.emergency_access_hours),
            log=self._services.audit,
            logged_as=logged_as,
            together_with=await reader.notices_of(logged_as),
        )
