"""Writing what a person reports themselves: record an own measurement or an answered
form, and delete it, each behind the one decision (:func:`consent.policy.decide_own_data_write`)
and logged in the person's access log, refusals included.

A create is checked element by element (:mod:`fhir_profiles.own_input`), its subject must
be the person, and it is stored once (:meth:`gateway.access.own_data.OwnData.add`): a
retried request with the same ``Idempotency-Key``, or an ``If-None-Exist`` identifier the
person already recorded, returns what is there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from adapters.base import FhirResource
from consent.decision import AccessDecision
from consent.policy import decide_own_data_write, decide_self_service_role
from consent.principals import Principal
from consent.store import Logged
from fhir_profiles.own_input import OwnInputError, checked_observation, checked_response
from gateway.access.own_data import OwnDataFull
from gateway.access.reader import RecordReader, RecordServices
from gateway.errors import BadRequest, Forbidden, GatewayError, NotFound

#: The types a person records themselves, and how each is checked.
OWN_TYPES = ("Observation", "QuestionnaireResponse")
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
#: Why a create was refused once the patient was known: what it sent is not a
#: measurement or form the gateway accepts (422, 413).
INVALID_INPUT = "invalid-input"
_IF_NONE_EXIST = re.compile(r"^identifier=([^|&\s]{1,200})\|([A-Za-z0-9._:-]{1,64})$")


class UnprocessableOwnData(GatewayError):
    status, code = 422, "processing"


class OwnDataTooLarge(GatewayError):
    status, code = 413, "too-costly"


@dataclass(frozen=True, slots=True)
class Created:
    """A create's answer: the resource, and whether this request made it."""

    resource: FhirResource
    created: bool


def idempotency_key(value: str | None) -> str | None:
    """An ``Idempotency-Key`` header: printable, at most 200 characters; else 400."""
    if value is None:
        return None
    if not _KEY.match(value):
        raise BadRequest("Idempotency-Key must be 1-200 printable characters")
    return value


def if_none_exist(value: str | None) -> tuple[str, str] | None:
    """An ``If-None-Exist`` header: only ``identifier=system|value`` is understood; else 400."""
    if value is None:
        return None
    match = _IF_NONE_EXIST.match(value)
    if match is None:
        raise BadRequest("If-None-Exist supports identifier=system|value only")
    return match.group(1), match.group(2)


def _patient_id(body: Any) -> str:
    """The patient id the body's subject names (``Patient/{id}``); 422 otherwise."""
    subject = body.get("subject") if isinstance(body, dict) else None
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str) or not re.fullmatch(
        r"Patient/[A-Za-z0-9.-]{1,64}", reference
    ):
        raise UnprocessableOwnData("subject: must reference the patient (Patient/{id})")
    return reference.removeprefix("Patient/")


class OwnDataDesk:
    """Records and deletes one principal's own data."""

    def __init__(self, principal: Principal, services: RecordServices) -> None:
        self._principal = principal
        self._services = services
        self._reader = RecordReader(principal, services)

    def check_role(self, resource_type: str, permission: str) -> None:
        """Refuse (403) whoever may not write the type whoever the patient is (care
        staff, an integrator, a citizen without the scope): decided before the body is
        read; the patient is not known yet, so the refusal is in no patient's log."""
        if resource_type not in OWN_TYPES:
            raise Forbidden("not permitted (not-own-data)")
        role = decide_self_service_role(self._principal, resource_type, permission)
        if not role.allowed:
            raise Forbidden(f"not permitted ({role.reason})")

    async def _authorise(
        self, patient_id: str, resource_type: str, permission: str
    ) -> tuple[AccessDecision, str]:
        """Decide on writing the patient's own data; a refusal is logged and is a 403.
        The decision and the log action."""
        action = "own-data-create" if permission == "c" else "own-data-delete"
        person = await self._services.persons.resolve(patient_id)
        if person is None:
            raise Forbidden("not permitted (not-own-record)")
        facts = await self._reader.facts(person, patient_id)
        decision = decide_own_data_write(self._principal, facts, resource_type, permission)
        if not decision.allowed:
            await self._reader.log(decision, patient_id, action, [resource_type])
            raise Forbidden(f"not permitted ({decision.reason})")
        return decision, action

    def _logged(
        self, decision: AccessDecision, patient_id: str, action: str, resource_type: str
    ) -> Logged:
        """The access log and the entry a write of one resource is committed with."""
        entry = self._reader.entry(
            decision, patient_id, action, [resource_type], {resource_type: 1}
        )
        return self._services.audit, entry

    async def create(
        self,
        resource_type: str,
        body: Any,
        *,
        key: str | None,
        identifier: tuple[str, str] | None,
        max_attachment_bytes: int,
    ) -> Created:
        """Check, decide, store once and log a create of ``resource_type``: a body
        refused once the patient is known is logged as refused (never the body)."""
        if not isinstance(body, dict) or body.get("resourceType") != resource_type:
            raise BadRequest(f"the body must be a {resource_type} resource")
        patient_id = _patient_id(body)
        decision, action = await self._authorise(patient_id, resource_type, "c")
        now = self._services.now()
        try:
            if resource_type == "Observation":
                checked = checked_observation(body, now)
            else:
                checked = checked_response(body, now, max_attachment_bytes)
            logged = self._logged(decision, patient_id, action, resource_type)
            stored = await self._services.own_data.add(
                patient_id, checked, now, logged, key=key, identifier=identifier
            )
        except (OwnInputError, OwnDataFull) as exc:  # nothing stored
            refused = AccessDecision.deny(INVALID_INPUT, decision.actor_kind)
            await self._reader.log(refused, patient_id, action, [resource_type])
            if exc.status == 413:
                raise OwnDataTooLarge(str(exc)) from exc
            raise UnprocessableOwnData(str(exc)) from exc
        return Created(stored.resource, stored.created)

    async def delete(self, resource_type: str, resource_id: str) -> None:
        """Delete one of the person's own resources, with its log entry: 404 if no one's,
        403 (logged) if the principal may not delete it."""
        patient_id = await self._services.own_data.owner(resource_type, resource_id)
        if patient_id is None:
            raise NotFound(f"no such {resource_type}")
        decision, action = await self._authorise(patient_id, resource_type, "d")
        logged = self._logged(decision, patient_id, action, resource_type)
        await self._services.own_data.delete(patient_id, resource_type, resource_id, logged)
