"""The patient's own choices and their access log, behind the same boundary as reads.

Granting and withdrawing consent, blocking and unblocking, and reading who has accessed
the record: only the patient (or a guardian of a child under 13) may do these, decided
by :func:`consent.policy.decide_self_service`, and every attempt is logged. A guardian
block (hiding a care provider's or unit's data from the patient's guardians) is set, read
and lifted by the patient or by care staff of that provider or unit, decided by
:func:`consent.policy.decide_guardian_block`; to a guardian it reads as not found, and
what a guardian is shown of the choices and the log is what :mod:`consent.visibility`
lets them see. A seal of the person's online view, or their delayed release
(:mod:`consent.seals`), is a Consent managed as a block is, by whoever manages the
person's choices.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consent.audit import AuditLog
from consent.decision import PROXY_KINDS, AccessDecision
from consent.entries import AuditEntryPublic
from consent.fhir import (
    ConsentRequest,
    InvalidConsent,
    block_resource,
    consent_resource,
    parse_consent,
    parse_status_change,
)
from consent.policy import (
    ADULT_AGE,
    PROXY_MAY_NOT_MANAGE,
    AccessFacts,
    decide_guardian_block,
    decide_seal,
    decide_self_service,
    decide_self_service_role,
)
from consent.principals import Principal
from consent.seals import parse_seal, seal_code, seal_resource
from consent.store import Logged
from consent.visibility import Visibility
from gateway.access.reader import RecordReader, RecordServices, type_counts
from gateway.errors import BadRequest, Forbidden, NotFound
from store.tables import BlockRecord, ConsentRecord, SealRecord


class UnprocessableConsent(BadRequest):
    status, code = 422, "processing"


def _is_proxy_grant(resource: dict[str, Any]) -> bool:
    """Whether a Consent resource (as the gateway renders it) is a proxy grant."""
    actors = resource.get("provision", {}).get("actor", [])
    return any(
        coding.get("code") == "HPOWATT"
        for actor in actors
        for coding in actor.get("role", {}).get("coding", [])
    )


class PatientChoices:
    """Consents, blocks and the access log of one patient, for one principal."""

    def __init__(self, principal: Principal, services: RecordServices) -> None:
        self._services = services
        self._reader = RecordReader(principal, services)
        self._principal = principal

    async def _facts(self, patient_id: str) -> AccessFacts:
        person = await self._reader.person(patient_id)
        return await self._reader.facts(person, patient_id)

    async def _authorise(
        self, patient_id: str, resource_type: str, permission: str, action: str
    ) -> AccessDecision:
        facts = await self._facts(patient_id)
        decision = decide_self_service(self._principal, facts, resource_type, permission)
        return await self._allowed(decision, patient_id, action, resource_type)

    async def _authorise_guardian_block(
        self, patient_id: str, level: str, hsa_id: str, permission: str, action: str
    ) -> AccessDecision:
        facts = await self._facts(patient_id)
        decision = decide_guardian_block(self._principal, facts, level, hsa_id, permission)
        return await self._allowed(decision, patient_id, action, "Consent")

    async def _allowed(
        self,
        decision: AccessDecision,
        patient_id: str,
        action: str,
        resource_type: str,
        record: BlockRecord | None = None,
    ) -> AccessDecision:
        """``decision`` if it allows; else the refusal is logged and raised: 403, or 404
        when the principal may not even know of ``record``."""
        if not decision.allowed:
            await self._reader.log(decision, patient_id, action, [resource_type])
            if record is not None and not Visibility(decision).shows_block(record):
                raise NotFound("no such Consent")
            raise Forbidden(f"not permitted ({decision.reason})")
        return decision

    def check_role(self, permission: str) -> None:
        """Refuse (403) whoever may not change consents whoever the patient is: an
        integrator, a citizen without the ``patient/Consent`` scope for ``permission``, a
        clinician without the ``user/Consent`` one (care staff change guardian blocks). Routes
        call it before reading the request body, so such a request is refused whatever its
        body; the patient is not known yet, so the refusal is in no patient's log."""
        role = decide_self_service_role(self._principal, "Consent", permission)
        if not role.allowed:
            raise Forbidden(f"not permitted ({role.reason})")

    async def create(self, body: Any) -> dict[str, Any]:
        """Record a consent (permit), a block (deny) or a seal from a Consent resource."""
        if seal_code(body) is not None:
            return await self._seal(body)
        try:
            request = parse_consent(body)
        except InvalidConsent as exc:
            raise UnprocessableConsent(str(exc)) from exc
        guardian_block = request.hidden_from == "guardians"
        action = "guardian-block-create" if guardian_block else f"{request.kind}-create"
        if guardian_block:
            decision = await self._authorise_guardian_block(
                request.patient_id, request.level, request.hsa_id, "c", action
            )
        else:
            decision = await self._authorise(request.patient_id, "Consent", "c", action)
        store = self._services.consents
        if request.kind == "proxy":
            return await self._grant_proxy(request, decision, action)
        # The change and its log entry are committed together, or neither is.
        logged = self._logged(decision, request.patient_id, action)
        if request.kind == "consent":
            record = await store.grant(
                request.patient_id,
                request.level,
                request.hsa_id,
                request.start,
                request.end,
                logged=logged,
            )
            return consent_resource(record, self._services.now())
        block = await store.block(
            request.patient_id,
            request.level,
            request.hsa_id,
            hidden_from=request.hidden_from,
            logged=logged,
        )
        return block_resource(block)

    async def _seal(self, body: Any) -> dict[str, Any]:
        """Record a seal of the person's online view, or their delayed release."""
        try:
            request = parse_seal(body)
        except InvalidConsent as exc:
            raise UnprocessableConsent(str(exc)) from exc
        action = "seal-create"
        facts = await self._facts(request.patient_id)
        decision = decide_seal(self._principal, facts, "c")
        decision = await self._allowed(decision, request.patient_id, action, "Consent")
        logged = self._logged(decision, request.patient_id, action)
        return seal_resource(await self._services.consents.seals.seal(request, logged))

    async def _grant_proxy(
        self, request: ConsentRequest, decision: AccessDecision, action: str
    ) -> dict[str, Any]:
        """Record a proxy grant: the proxy is kept by their opaque id (remembered in the
        person index, so the grant can name them again); nobody is their own proxy.

        Only the person grants a proxy: a proxy, even one who manages,
        never does, since a grant they made could pass on more than their own (wider
        categories, managing, a longer period), also back to themselves through another."""
        assert request.proxy is not None
        if decision.actor_kind in PROXY_KINDS:
            refused = AccessDecision.deny(PROXY_MAY_NOT_MANAGE, decision.actor_kind)
            await self._allowed(refused, request.patient_id, action, "Consent")
        if request.proxy == await self._reader.person(request.patient_id):
            raise UnprocessableConsent("a person cannot be their own proxy")
        if request.proxy.age_on(self._services.now().date()) < ADULT_AGE:
            raise UnprocessableConsent(f"a proxy is an adult ({ADULT_AGE} or older)")
        proxy_id = await self._services.persons.remember(request.proxy)
        record = await self._services.consents.grant(
            request.patient_id,
            "proxy",
            proxy_id,
            request.start,
            request.end,
            logged=self._logged(decision, request.patient_id, action),
            covers=request.covers,
            manages=request.manages,
        )
        return consent_resource(record, self._services.now(), request.proxy)

    async def _resource(self, record: ConsentRecord, now: datetime) -> dict[str, Any]:
        """A consent record as a Consent resource; a proxy grant names its proxy by
        identity number (in the body only) when the person index knows them."""
        proxy = None
        if record.grantee_type == "proxy":
            proxy = await self._services.persons.resolve(record.grantee_hsa_id)
        return consent_resource(record, now, proxy)

    def _logged(self, decision: AccessDecision, patient_id: str, action: str) -> Logged:
        """The access log and the entry for a change of one Consent resource."""
        entry = self._reader.entry(decision, patient_id, action, ["Consent"], {"Consent": 1})
        return self._services.audit, entry

    async def _find(
        self, record_id: str
    ) -> tuple[str, dict[str, Any], BlockRecord | SealRecord | None]:
        """The patient, the resource and (for a block or a seal) the record of Consent
        ``record_id``."""
        store = self._services.consents
        seal = await store.seals.get(record_id) if record_id.startswith("seal-") else None
        if seal is not None:
            return seal.patient_id, seal_resource(seal), seal
        consent = await store.get_consent(record_id) if record_id.startswith("consent-") else None
        if consent is not None:
            resource = await self._resource(consent, self._services.now())
            return consent.patient_id, resource, None
        block = await store.get_block(record_id) if record_id.startswith("block-") else None
        if block is not None:
            return block.patient_id, block_resource(block), block
        raise NotFound("no such Consent")

    async def _authorise_record(
        self,
        patient_id: str,
        record: BlockRecord | SealRecord | None,
        permission: str,
        action: str,
    ) -> AccessDecision:
        """May the principal do ``permission`` on a consent, block or seal of the patient."""
        facts = await self._facts(patient_id)
        block = record if isinstance(record, BlockRecord) else None
        if block is not None and block.hidden_from == "guardians":
            level, hsa_id = block.blocked_type, block.blocked_hsa_id
            decision = decide_guardian_block(self._principal, facts, level, hsa_id, permission)
        elif isinstance(record, SealRecord):
            decision = decide_seal(self._principal, facts, permission)
        else:
            decision = decide_self_service(self._principal, facts, "Consent", permission)
        return await self._allowed(decision, patient_id, action, "Consent", block)

    async def read(self, record_id: str) -> dict[str, Any]:
        patient_id, resource, block = await self._find(record_id)
        decision = await self._authorise_record(patient_id, block, "r", "read")
        await self._reader.log(decision, patient_id, "read", ["Consent"], type_counts([resource]))
        return resource

    async def search(self, patient_id: str) -> list[dict[str, Any]]:
        decision = await self._authorise(patient_id, "Consent", "s", "search")
        store, now = self._services.consents, self._services.now()
        standing = await store.standing(patient_id, None, now)
        visibility = Visibility(decision)
        resources = [await self._resource(c, now) for c in standing.consents]
        resources += [block_resource(b) for b in standing.blocks if visibility.shows_block(b)]
        resources += [seal_resource(s) for s in await store.seals.of_patient(patient_id)]
        await self._reader.log(decision, patient_id, "search", ["Consent"], type_counts(resources))
        return resources

    async def update(self, record_id: str, body: Any) -> dict[str, Any]:
        """Withdraw a consent or lift a block: the only change a Consent accepts."""
        patient_id, current, block = await self._find(record_id)
        if block is None:
            action = "proxy-withdraw" if _is_proxy_grant(current) else "consent-withdraw"
        elif isinstance(block, SealRecord):
            action = "seal-lift"
        else:
            action = "guardian-block-lift" if block.hidden_from == "guardians" else "block-lift"
        # Decided before the body is read: who may not know of the record learns nothing
        # of it from how its body is judged.
        decision = await self._authorise_record(patient_id, block, "u", action)
        try:
            status = parse_status_change(body, record_id)
        except InvalidConsent as exc:
            raise UnprocessableConsent(str(exc)) from exc
        if status == "active" and current["status"] == "inactive":
            raise UnprocessableConsent(
                "a withdrawn consent or lifted block cannot be reactivated: create a new one"
            )
        if status == "active":  # no change: the request is logged all the same
            await self._reader.log(decision, patient_id, action, ["Consent"], {"Consent": 1})
            return current
        store = self._services.consents
        logged = self._logged(decision, patient_id, action)
        if block is None:
            consent = await store.withdraw(record_id, logged=logged)
            if consent is None:
                raise NotFound("no such Consent")
            return await self._resource(consent, self._services.now())
        if isinstance(block, SealRecord):
            unsealed = await store.seals.lift(record_id, logged)
            if unsealed is None:
                raise NotFound("no such Consent")
            return seal_resource(unsealed)
        lifted = await store.lift(record_id, logged=logged)
        if lifted is None:
            raise NotFound("no such Consent")
        return block_resource(lifted)

    async def access_log(self, patient_id: str, *, upto: int | None = None) -> AccessLogView:
        """Who has accessed the patient's data: every entry the principal may see, never
        capped, as a view of their (seq, recorded_at) keys, newest first, whose entries
        are read a page at a time.

        ``upto`` (a seq) keeps the entries a first page saw, so later pages neither repeat
        nor skip entries appended meanwhile (this reading is logged too, after it). A
        reader shown every entry has only the keys read here; for one shown some (a
        guardian), every entry is read and decided on first.
        """
        decision = await self._authorise(patient_id, "AuditEvent", "s", "audit-read")
        log = self._services.audit
        visibility, provider_of = Visibility(decision), self._services.provider_of
        if visibility.hides_guardian_blocks:
            entries: list[AuditEntryPublic] = []
            below = upto
            while True:  # by seq, not offset: entries appended meanwhile shift no batch
                batch = await log.for_patient(patient_id, upto=below, limit=_LOG_BATCH)
                entries += batch
                if len(batch) < _LOG_BATCH:
                    break
                below = batch[-1].seq - 1
            last = upto if upto is not None else (entries[0].seq if entries else 0)
            shown = [e for e in entries if visibility.shows_entry(e, provider_of)]
            view = AccessLogView(patient_id, last, [(e.seq, e.recorded_at) for e in shown], log)
            view.read = {e.seq: e for e in shown}
        else:
            keys = await log.keys_for_patient(patient_id, upto=upto)
            last = upto if upto is not None else (keys[0][0] if keys else 0)
            view = AccessLogView(patient_id, last, keys, log)
        await self._reader.log(decision, patient_id, "audit-read", ["AuditEvent"])
        return view


class AccessLogView:
    """What one authorised reading of a patient's access log may show: the keys (seq,
    recorded_at) of every entry shown, newest first, up to entry ``last``; its entries
    are read by :meth:`entries`, only among those keys."""

    def __init__(
        self, patient_id: str, last: int, keys: list[tuple[int, datetime]], log: AuditLog
    ) -> None:
        self.patient_id = patient_id
        self.last = last
        self.keys = keys
        self.read: dict[int, AuditEntryPublic] = {}
        self._log = log
        self._shown = frozenset(seq for seq, _ in keys)

    async def entries(self, seqs: list[int]) -> list[AuditEntryPublic]:
        """The entries with these seqs (shown ones only), in the order given."""
        wanted = [seq for seq in seqs if seq in self._shown]
        missing = [seq for seq in wanted if seq not in self.read]
        for start in range(0, len(missing), _LOG_BATCH):
            batch = await self._log.by_seq(self.patient_id, missing[start : start + _LOG_BATCH])
            self.read.update((entry.seq, entry) for entry in batch)
        return [self.read[seq] for seq in wanted if seq in self.read]


#: Entries of the access log read at a time.
_LOG_BATCH = 1000
