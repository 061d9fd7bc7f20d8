"""The one way a write reaches the system that owns it: :class:`Writer`.

A writer is made for one principal. For each write it finds the owner recorded on what
the write concerns (the source and care unit of the Slot booked, of the Appointment
changed, of the prescription a Task asks to renew, of the unit a message is for), sets
what the gateway decides in what is sent (a Task's ``owner``; an update is the
Appointment the record holds, cancelled or moved, and a move's new unit is decided too;
nothing names a Patient but the writer's), asks the policy
(:func:`consent.writes.decide_write`: never to an unknown or blocked unit), writes the
access log entry, stores the write in the outbox under its idempotency key, and has it
delivered now. The answer says what happened: delivered
(201, or 200 for an update), queued because the owner did not answer in time (202 with a
status URL), or refused (the owner's reason, say 409 for a slot taken).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from adapters.base import FhirResource, supports_writes
from adapters.errors import SourceError
from consent.audit import AuditLog
from consent.decision import AccessDecision
from consent.policy import AccessFacts
from consent.principals import Citizen, Clinician, Integrator, Principal
from consent.store import ConsentStore
from consent.writes import decide_write, decide_write_role
from fhir_profiles.identifiers import HSA_ID_SYSTEM
from fhir_profiles.record_status import care_tags
from fhir_profiles.writes import PERMISSION, WriteShapeError, appointment_change, moved_to
from gateway.access.facts import READABLE_TYPES
from gateway.access.outbox import QUEUED, WriteOutbox, new_id, request_digest
from gateway.access.reader import RecordReader, RecordServices
from gateway.access.write_worker import Delivered, WriteWorker
from gateway.collect.directory import Directory
from gateway.collect.slots import Schedules, writer_of
from gateway.errors import Forbidden, GatewayError, NotFound, ServiceUnavailable, Unprocessable
from gateway.merge.record import also_known_as
from gateway.merge.written import ForeignReference, check_references
from gateway.sources import Source
from store.jobs import WriteRequest

_T = TypeVar("_T")


class WritingServices(RecordServices, Protocol):
    """What writing needs of the process's long-lived parts."""

    consents: ConsentStore
    audit: AuditLog
    directory: Directory
    writes: WriteWorker | None
    schedules: Schedules | None


class NotWritable(GatewayError):
    """The owner's adapter cannot write (a source that is read only, say the legacy
    XML services)."""

    status, code = 422, "not-supported"


@dataclass(frozen=True, slots=True)
class WriteAsk:
    """One write as a client asked for it."""

    interaction: str
    resource_type: str
    resource: FhirResource
    patient_id: str
    #: What the write concerns, by gateway id: ``Type/id`` (a Slot, the Appointment
    #: changed, a Task's focus, a message's recipient).
    concerns: str
    client_key: str | None
    target_id: str | None = None
    #: The care unit the client asks, by gateway id (``Organization/id``; a Task's
    #: ``owner``): taken when what the write concerns names no unit itself.
    unit_hint: str | None = None


@dataclass(frozen=True, slots=True)
class Owner:
    source: Source
    unit_hsa_id: str | None
    provider_hsa_id: str
    #: What the write changes, as the patient's record holds it (an update's Appointment).
    current: FhirResource | None = None


def asker(principal: Principal, reader_services: RecordServices) -> str:
    """Who asks, as text (never an identity number: the opaque id of a citizen)."""
    match principal:
        case Citizen():
            return "citizen:" + reader_services.persons.id_for(principal.person)
        case Clinician():
            return f"clinician:{principal.hsa_id}:{principal.care_unit_hsa_id}"
        case Integrator():
            return f"integrator:{principal.client_id}:{principal.care_provider_hsa_id}"
    raise AssertionError("unknown principal")  # pragma: no cover


class Writer:
    """Writes on behalf of one principal."""

    def __init__(self, principal: Principal, services: WritingServices, outbox: WriteOutbox):
        self._principal = principal
        self._services = services
        self._outbox = outbox
        self._reader = RecordReader(principal, services)

    def check_role(self, resource_type: str, interaction: str) -> None:
        """Refuse, before the body is read, what the principal may never write."""
        if not decide_write_role(self._principal, resource_type, PERMISSION[interaction]).allowed:
            raise Forbidden("the token's scopes do not allow writing this resource type")

    async def write(self, ask: WriteAsk) -> Delivered:
        """Decide, log, queue and deliver ``ask``; the write as it then stands."""
        self.check_role(ask.resource_type, ask.interaction)
        person = await self._reader.person(ask.patient_id)
        now = self._services.now()
        standing = await self._services.consents.standing(
            ask.patient_id,
            self._principal.hsa_id if isinstance(self._principal, Clinician) else None,
            now,
        )
        facts = AccessFacts(
            person=person,
            patient_id=ask.patient_id,
            now=now,
            consents=standing.consents,
            blocks=standing.blocks,
            served_types=READABLE_TYPES,
            ages=self._services.settings.citizen_ages,
        )
        permission = PERMISSION[ask.interaction]
        # Whoever owns it first (nothing is looked up for one who may not write at
        # all), then for the owner found: never an unknown or blocked unit.
        decision = decide_write(self._principal, facts, ask.resource_type, permission, None)
        # What the client asked identifies the write (a repeated update is the same one).
        digest = request_digest(ask.interaction, ask.resource_type, ask.target_id, ask.resource)
        if decision.allowed:
            owner = await self._or_logged(self._owner(ask), ask, decision, "owner-unknown")
            outgoing = self._outgoing(ask, owner)
            ask, units = await self._or_logged(outgoing, ask, decision, INVALID_INPUT)
            for unit in units:  # an Appointment moved: its new unit as well
                decision = decide_write(
                    self._principal,
                    facts,
                    ask.resource_type,
                    permission,
                    (unit.provider_hsa_id, unit.unit_hsa_id),
                )
                if not decision.allowed:
                    break
        if decision.allowed and await self._key_taken(ask, digest):
            refused = AccessDecision.deny(KEY_REUSED, decision.actor_kind)
            await self._reader.log(refused, ask.patient_id, ask.interaction, [ask.resource_type])
            raise Unprocessable(_KEY_REUSED_TEXT)
        await self._reader.log(decision, ask.patient_id, ask.interaction, [ask.resource_type])
        if not decision.allowed:
            raise Forbidden(f"this write is not permitted ({decision.reason})")
        return await self._submit(ask, owner, now, digest)

    async def _key_taken(self, ask: WriteAsk, digest: str) -> bool:
        """Whether the client's ``Idempotency-Key`` names a write other than this one
        (checked again as the write is stored, for two requests racing)."""
        if ask.client_key is None:
            return False
        who = asker(self._principal, self._services)
        earlier = await self._outbox.by_key(self._outbox.keyed(who, ask.client_key))
        return earlier is not None and earlier.request_digest != digest

    async def _outgoing(self, ask: WriteAsk, owner: Owner) -> tuple[WriteAsk, list[Owner]]:
        """What is sent to ``owner``, and every unit the write goes to: a Task's
        ``owner`` is the unit it was routed to; an update is the Appointment the record
        holds, cancelled or moved (to a Slot of the same owner) and nothing else."""
        resource, units = ask.resource, [owner]
        try:
            if ask.resource_type == "Task" and owner.unit_hsa_id:
                unit = {"system": HSA_ID_SYSTEM, "value": owner.unit_hsa_id}
                resource = resource | {"owner": {"type": "Organization", "identifier": unit}}
            if ask.interaction == "update":
                if owner.current is None:
                    raise Unprocessable("what this write changes is unknown")
                resource = appointment_change(owner.current, ask.resource)
                slot = moved_to(owner.current, resource)
                if slot is not None:
                    moved = await self._owner(replace(ask, concerns=f"Slot/{slot}"))
                    if moved.source.id != owner.source.id:
                        raise Unprocessable("an Appointment moves to a Slot of its owner only")
                    units.append(moved)
            check_references(resource, ask.patient_id)
        except (WriteShapeError, ForeignReference) as exc:
            raise Unprocessable(str(exc)) from exc
        return replace(ask, resource=resource), units

    async def _submit(self, ask: WriteAsk, owner: Owner, now: datetime, digest: str) -> Delivered:
        worker = self._services.writes
        assert worker is not None  # made at start
        who = asker(self._principal, self._services)
        key = ask.client_key if ask.client_key is not None else f"digest:{digest}"
        row_id = new_id()
        row = WriteRequest(
            id=row_id,
            idempotency_key=self._outbox.keyed(who, key),
            request_digest=digest,
            asked_by=self._outbox.keyed(who),
            patient_id=ask.patient_id,
            source_id=owner.source.id,
            care_unit_hsa_id=owner.unit_hsa_id or "",
            interaction=ask.interaction,
            resource_type=ask.resource_type,
            target_id=ask.target_id,
            body=self._outbox.seal(row_id, ask.resource),
            status=QUEUED,
            # Held by this request, which delivers it first; another process's worker
            # takes it only if this one stops before it is done.
            due_at=now + worker.lease,
            recorded_at=now,
        )
        # A key of the body alone holds for a while (the same booking may be asked again
        # a year later); a client's own key holds for good.
        window = timedelta(hours=self._services.settings.write_digest_key_hours)
        stored, new = await self._outbox.submit(
            row, renew_before=now - window if ask.client_key is None else None
        )
        if stored.request_digest != digest:
            raise Unprocessable(_KEY_REUSED_TEXT)
        if stored.status != QUEUED:
            return Delivered(stored)
        task = worker.start_now(stored.id, held=new)
        wait = self._services.settings.write_wait_seconds
        try:
            return await asyncio.wait_for(asyncio.shield(task), wait)
        except TimeoutError:
            return Delivered(await self._outbox.get(stored.id) or stored)

    def mine(self, row: WriteRequest) -> bool:
        """Whether ``row`` was asked for by this principal."""
        return row.asked_by == self._outbox.keyed(asker(self._principal, self._services))

    # -- the owner of what a write concerns ---------------------------------------------

    async def _or_logged(
        self, step: Awaitable[_T], ask: WriteAsk, decision: AccessDecision, otherwise: str
    ) -> _T:
        """What ``step`` (finding the owner, shaping what is sent) gives; when it refuses
        (404, 422, 503) the attempt is logged as refused, why in a word (``otherwise`` for
        a 422 of its own), before the error is raised."""
        try:
            return await step
        except GatewayError as exc:
            reason = _OWNER_REFUSALS.get(type(exc), otherwise)
            refused = AccessDecision.deny(reason, decision.actor_kind)
            await self._reader.log(refused, ask.patient_id, ask.interaction, [ask.resource_type])
            raise

    def _source_of(self, gateway_id: str) -> tuple[Source, str]:
        found = self._services.directory.source_of(gateway_id)
        if found is None:
            raise Unprocessable("the owner of what this write concerns is unknown")
        return found

    async def _owner(self, ask: WriteAsk) -> Owner:
        kind, _, gid = ask.concerns.partition("/")
        source, local = self._source_of(gid)
        if not supports_writes(writer_of(source)):
            raise NotWritable("the system that owns this does not accept writes")
        provider = source.config.care_provider_hsa_id
        if not provider:  # a block of its care provider could not be told: fail closed
            raise NotWritable("the care provider of the system that owns this is unknown")
        try:
            if kind == "Slot":
                assert self._services.schedules is not None  # made at start
                found = await self._services.schedules.owner(source, local)
                if found is None:
                    raise NotFound("no such Slot")
                return Owner(source, found.unit_hsa_id, provider)
            if kind == "Organization":
                organisation = await self._services.directory.read("Organization", gid)
                if organisation is None:
                    raise NotFound("no such Organization")
                return Owner(source, _hsa_id(organisation), provider)
        except SourceError as exc:
            raise ServiceUnavailable("the owning system cannot be asked now") from exc
        resource = await self._in_record(kind, gid, ask.patient_id)
        tagged_provider, unit = care_tags(resource)
        unit = (
            unit
            or _participating_unit(resource)
            or await self._outbox.unit_of_result(source.id, local)
            or await self._hinted_unit(ask, source)
        )
        return Owner(source, unit, tagged_provider or provider, resource)

    async def _hinted_unit(self, ask: WriteAsk, source: Source) -> str | None:
        """The unit the client named (of the same source as what the write concerns)."""
        if ask.unit_hint is None:
            return None
        kind, _, gid = ask.unit_hint.partition("/")
        found = self._services.directory.source_of(gid)
        if kind != "Organization" or found is None or found[0].id != source.id:
            return None
        try:
            organisation = await self._services.directory.read("Organization", gid)
        except SourceError as exc:
            raise ServiceUnavailable("the owning system cannot be asked now") from exc
        return _hsa_id(organisation) if organisation is not None else None

    async def _in_record(self, kind: str, gid: str, patient_id: str) -> FhirResource:
        """The resource ``kind/gid`` in the patient's record, read as the principal (a
        read decided and logged like any other); 404 if the record holds no such one."""
        reference = f"{kind}/{gid}"
        result = await self._reader.search(kind, patient_id)
        for resource in result.resources:
            if resource.get("id") == gid or reference in also_known_as(resource):
                return resource
        raise NotFound(f"no such {kind} in the patient's record")


#: A write refused because what is sent could not be made of it (logged as this).
INVALID_INPUT = "invalid-input"
#: A write refused because its ``Idempotency-Key`` names another write (logged as this).
KEY_REUSED = "idempotency-key-reused"
_KEY_REUSED_TEXT = "this Idempotency-Key was used for another request"

#: Why a write is refused when the owner of what it concerns cannot be found, as logged.
_OWNER_REFUSALS: dict[type[GatewayError], str] = {
    NotFound: "no-such-target",
    NotWritable: "not-writable",
    ServiceUnavailable: "owner-unavailable",
}


def _participating_unit(resource: FhirResource) -> str | None:
    """The care unit an Appointment's participants name by HSA-id (a Location or a
    HealthcareService, never a person)."""
    for participant in resource.get("participant") or ():
        actor = participant.get("actor") if isinstance(participant, dict) else None
        if isinstance(actor, dict) and actor.get("type") in ("Location", "HealthcareService"):
            unit = _hsa_id({"identifier": [actor.get("identifier")]})
            if unit:
                return unit
    return None


def _hsa_id(resource: FhirResource) -> str | None:
    for identifier in resource.get("identifier") or ():
        if isinstance(identifier, dict) and identifier.get("system") == HSA_ID_SYSTEM:
            value: Any = identifier.get("value")
            return value if isinstance(value, str) else None
    return None
