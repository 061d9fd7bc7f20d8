"""The access policy: the one place that decides who may read whose data.

``decide`` is a pure function of the principal and the facts about the person (consents,
blocks, emergency access, guardianship), so every rule can be tested without a database.
The rules, in plain words, are in docs/consent.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from consent.decision import NOT_FOR_GUARDIANS, PROXY_KINDS, AccessDecision
from consent.online import OnlineExclusions, reads_online, withhold_online
from consent.principals import Citizen, Clinician, Integrator, Principal
from consent.scopes import parse_scopes
from fhir_profiles.identifiers import PersonIdentifier
from fhir_profiles.record_categories import Coverage, coverage
from store.tables import BlockRecord, ConsentRecord, EmergencyAccess, SealRecord, as_utc


@dataclass(frozen=True, slots=True)
class CitizenAges:
    """The ages that bound what citizens read of themselves and their children (1177
    Journalen's rules; configurable, see docs/configuration.md)."""

    #: A person reads their own record, and manages their choices, from this birthday.
    own_from: int = 16
    #: A guardian reads and manages a child's record until the child's this birthday.
    guardian_until: int = 13


@dataclass(frozen=True, slots=True)
class AccessFacts:
    """What is known about the person when a principal asks for their data."""

    person: PersonIdentifier
    patient_id: str
    now: datetime
    consents: Sequence[ConsentRecord] = ()
    blocks: Sequence[BlockRecord] = ()
    #: The asking clinician's running emergency access to this person, if any.
    emergency: EmergencyAccess | None = None
    #: The guardian register names the asking citizen as the person's guardian.
    guardian: bool = False
    served_types: frozenset[str] = field(default_factory=frozenset)
    ages: CitizenAges = CitizenAges()
    #: The person's seals of their online view and their delayed release (known when a
    #: citizen reads: they bind only the online view, :mod:`consent.online`).
    seals: Sequence[SealRecord] = ()
    #: What the region never shows the person online.
    exclusions: OnlineExclusions = field(default_factory=OnlineExclusions)
    #: The person's proxy grants (active or not) that name the asking citizen.
    proxy_grants: Sequence[ConsentRecord] = ()
    #: The relations register names the asking citizen as the person's legal
    #: representative (god man, förvaltare).
    representative: bool = False


#: A person is acted for by a proxy or a legal representative from this birthday (younger
#: people have guardians); a proxy or legal representative is this old too.
ADULT_AGE = 18


@dataclass(frozen=True, slots=True)
class ProxyStanding:
    """What a citizen acting for another adult may do: read what ``covers`` covers (None:
    all the person sees), and manage the person's choices (``manages``)."""

    covers: Coverage | None
    manages: bool


def proxy_standing(facts: AccessFacts) -> ProxyStanding | None:
    """How the asking citizen may act for ``facts.person``: as legal representative (the
    whole record, managing nothing), or by the person's active proxy grants to them
    together (their limits joined; any unlimited one covers all); None if by neither."""
    if facts.person.age_on(facts.now.date()) < ADULT_AGE:
        return None
    grants = [g for g in facts.proxy_grants if consent_is_active(g, facts.now)]
    if facts.representative:
        return ProxyStanding(None, False)
    if not grants:
        return None
    manages = any(g.manages for g in grants)
    if any(not g.covers for g in grants):
        return ProxyStanding(None, manages)
    return ProxyStanding(coverage(c for g in grants for c in (g.covers or "").split()), manages)


#: Why a proxy or legal representative may not manage the person's choices or read their
#: access log: their grant does not say so (``provision.action`` ``correct``).
PROXY_MAY_NOT_MANAGE = "proxy-may-not-manage"


def consent_is_active(record: ConsentRecord, at: datetime) -> bool:
    """Whether ``record`` lets its grantee read at ``at``: begun, not ended, not withdrawn."""
    if record.withdrawn_at is not None:
        return False
    if as_utc(record.period_start) > at:
        return False
    return record.period_end is None or as_utc(record.period_end) > at


def _hidden(
    blocks: Iterable[BlockRecord],
    own_provider: str | None,
    own_unit: str | None,
    *,
    hidden_from: str = "others",
) -> tuple[frozenset[str], frozenset[str]]:
    """Blocked data is hidden from everyone but the blocked provider or unit itself; the
    blocks that count are those hiding from ``hidden_from`` (``others``, or ``guardians``:
    guardian blocks, which bind the patient's guardians and nobody else)."""
    providers, units = set(), set()
    for block in blocks:
        if block.lifted_at is not None or block.hidden_from != hidden_from:
            continue
        if block.blocked_type == "care-provider" and block.blocked_hsa_id != own_provider:
            providers.add(block.blocked_hsa_id)
        elif block.blocked_type == "care-unit" and block.blocked_hsa_id != own_unit:
            units.add(block.blocked_hsa_id)
    return frozenset(providers), frozenset(units)


def _consented(
    consents: Iterable[ConsentRecord], now: datetime, provider: str, unit: str | None
) -> bool:
    for consent in consents:
        if not consent_is_active(consent, now):
            continue
        if consent.grantee_type == "care-provider" and consent.grantee_hsa_id == provider:
            return True
        if consent.grantee_type == "care-unit" and unit and consent.grantee_hsa_id == unit:
            return True
    return False


def _citizen_as(principal: Citizen, facts: AccessFacts) -> str | AccessDecision:
    """How a citizen asks about ``facts.person``: ``citizen`` (themselves, old enough) or
    ``guardian`` (of a child young enough); else the refusal."""
    age = facts.person.age_on(facts.now.date())
    if principal.person == facts.person:
        if age < facts.ages.own_from:
            return AccessDecision.deny("too-young", "citizen")
        return "citizen"
    if facts.guardian and age < facts.ages.guardian_until:
        return "guardian"
    adult = principal.person.age_on(facts.now.date()) >= ADULT_AGE  # as proxies are
    if adult and proxy_standing(facts) is not None:
        return "representative" if facts.representative else "proxy"
    return AccessDecision.deny("not-own-record", "citizen")


_REASON = {"citizen": "self", "guardian": "guardian", "proxy": "proxy"}
_REASON["representative"] = "legal-representative"


def _proxy_types(kind: str, facts: AccessFacts, types: frozenset[str]) -> AccessDecision:
    """What a citizen acting as ``kind`` reads of ``types`` (their scopes' types): for a
    proxy, only what their grant covers (and of Observations only its categories)."""
    standing = proxy_standing(facts) if kind in PROXY_KINDS else None
    covers = standing.covers if standing is not None else None
    return AccessDecision(
        allowed=True,
        reason=_REASON[kind],
        actor_kind=kind,
        purpose="PATRQT",
        resource_types=types if covers is None else types & covers.types,
        hides_unapproved=True,
        observation_categories=None if covers is None else covers.observation_categories,
    )


def _guardian_hidden(kind: str, facts: AccessFacts) -> tuple[frozenset[str], frozenset[str]]:
    """What a citizen acting as ``kind`` may not see: for a guardian, the care providers and
    units of the child's guardian blocks; nothing for the person themselves."""
    if kind != "guardian":
        return frozenset(), frozenset()
    return _hidden(facts.blocks, None, None, hidden_from="guardians")


def decide(principal: Principal, facts: AccessFacts) -> AccessDecision:
    """Decide whether ``principal`` may read the data of ``facts.person``, and how much."""
    match principal:
        case Citizen():
            kind = _citizen_as(principal, facts)
            if isinstance(kind, AccessDecision):
                return kind
            types = parse_scopes(principal.scopes, "patient").readable(facts.served_types)
            providers, units = _guardian_hidden(kind, facts)
            decision = replace(
                _proxy_types(kind, facts, types),
                hidden_providers=providers,
                hidden_units=units,
            )
        case Clinician():
            types = parse_scopes(principal.scopes, "user").readable(facts.served_types)
            own = (principal.care_provider_hsa_id, principal.care_unit_hsa_id)
            if _consented(facts.consents, facts.now, *own):
                providers, units = _hidden(facts.blocks, *own)
                decision = AccessDecision(
                    allowed=True,
                    reason="consent",
                    actor_kind="clinician",
                    purpose="TREAT",
                    hidden_providers=providers,
                    hidden_units=units,
                    resource_types=types,
                )
            elif facts.emergency is not None:
                override = facts.emergency.block_override_reason
                providers, units = (
                    (frozenset(), frozenset()) if override else _hidden(facts.blocks, *own)
                )
                decision = AccessDecision(
                    allowed=True,
                    reason="emergency",
                    actor_kind="clinician",
                    purpose="ETREAT",
                    emergency=True,
                    emergency_reason=facts.emergency.reason,
                    hidden_providers=providers,
                    hidden_units=units,
                    resource_types=types,
                )
            else:
                return AccessDecision.deny("no-consent", "clinician")
        case Integrator():
            types = parse_scopes(principal.scopes, "system").readable(facts.served_types)
            provider = principal.care_provider_hsa_id
            if not _consented(facts.consents, facts.now, provider, None):
                return AccessDecision.deny("no-consent", "integrator")
            providers, units = _hidden(facts.blocks, provider, None)
            decision = AccessDecision(
                allowed=True,
                reason="consent",
                actor_kind="integrator",
                purpose="TREAT",
                hidden_providers=providers,
                hidden_units=units,
                resource_types=types,
            )
    if not decision.resource_types:
        return AccessDecision.deny("scope", decision.actor_kind)
    if reads_online(decision):
        return withhold_online(decision, facts.seals, facts.exclusions, facts.now)
    return decision


def asked_types(types: Sequence[str], *, with_patient: bool, also: Sequence[str]) -> list[str]:
    """Every type a read asks for: ``types``, the Patient (``with_patient``), then ``also``."""
    main = [*types, "Patient"] if with_patient else list(types)
    return list(dict.fromkeys([*main, *also]))


@dataclass(frozen=True, slots=True)
class ReadScope:
    """What one allowed read covers (see :func:`scope_read`)."""

    #: The types the read is for (narrowed to the scopes when asked to be).
    types: list[str]
    #: More types read with them (a search's includes), within the scopes.
    extra: list[str]
    with_patient: bool
    #: The types the access log entry names.
    logged: list[str]


def scope_read(
    decision: AccessDecision,
    types: Sequence[str],
    *,
    with_patient: bool,
    narrow: bool = False,
    patient_required: bool = False,
    also: Sequence[str] = (),
) -> ReadScope | None:
    """What an allowed ``decision`` lets one read cover; None when it may not go ahead.

    ``types`` (and the Patient, with ``with_patient``) are what the read is for. With
    ``narrow``, the types the scopes do not cover are left out (except the Patient when
    ``patient_required``); without it, asking for one refuses the read. ``also`` names
    more types read with them, always narrowed: those the scopes cover are read and
    returned as included (the Patient, if named, as the patient), the others are never
    read and not named in the log entry.
    """
    main = [*types, "Patient"] if with_patient else list(types)
    if narrow:
        refused = patient_required and not decision.may_read_type("Patient")
    else:
        refused = not all(decision.may_read_type(t) for t in main)
    if refused:
        return None
    if narrow:
        types = [t for t in types if decision.may_read_type(t)]
        with_patient = with_patient and decision.may_read_type("Patient")
    extra = [
        t
        for t in dict.fromkeys(also)
        if t != "Patient" and t not in types and decision.may_read_type(t)
    ]
    extra_logged = extra
    if "Patient" in also and decision.may_read_type("Patient"):
        with_patient = True
        extra_logged = [*extra, "Patient"]
    return ReadScope(list(types), extra, with_patient, [*main, *extra_logged])


def decide_as_person(
    principal: Principal,
    facts: AccessFacts,
    resource_type: str,
    permission: str,
    *,
    only_themselves: str | None = None,
) -> AccessDecision:
    """A citizen on the person's own business, as themselves (from their own-access age)
    or their guardian, proxy or representative (``only_themselves``: why not those), with
    a ``patient/`` scope granting ``permission`` on the type; nobody else ever."""
    if not isinstance(principal, Citizen):
        return AccessDecision.deny("patient-only", principal.kind)
    kind = _citizen_as(principal, facts)
    if isinstance(kind, AccessDecision):
        return kind
    if only_themselves is not None and kind != "citizen":
        return AccessDecision.deny(only_themselves, kind)
    if not parse_scopes(principal.scopes, "patient").allows(resource_type, permission):
        return AccessDecision.deny("scope", kind)
    return AccessDecision(
        allowed=True,
        reason=_REASON[kind],
        actor_kind=kind,
        purpose="PATRQT",
        resource_types=frozenset({resource_type}),
    )


def decide_self_service(
    principal: Principal, facts: AccessFacts, resource_type: str, permission: str
) -> AccessDecision:
    """Managing consents and blocks, and reading the access log: the patient's own business,
    as :func:`decide_as_person` says (a proxy only if their grant lets them manage)."""
    decision = decide_as_person(principal, facts, resource_type, permission)
    if not decision.allowed:
        return decision
    kind = decision.actor_kind
    if kind in PROXY_KINDS:
        standing = proxy_standing(facts)
        if standing is None or not standing.manages:
            return AccessDecision.deny(PROXY_MAY_NOT_MANAGE, kind)
    providers, units = _guardian_hidden(kind, facts)
    return replace(decision, hidden_providers=providers, hidden_units=units)


#: Why a guardian may not record for the child: it is marked as reported by the patient.
NOT_THE_REPORTER = "not-the-reporter"


def decide_own_data_write(
    principal: Principal, facts: AccessFacts, resource_type: str, permission: str
) -> AccessDecision:
    """Recording (``c``) or deleting (``d``) what a person reports themselves (own
    measurements, answered forms): only the person (:func:`decide_as_person`); not a
    guardian or a proxy (the data says the patient reported it), nor care staff or an
    integrator (their records live in their own systems)."""
    return decide_as_person(
        principal, facts, resource_type, permission, only_themselves=NOT_THE_REPORTER
    )


def decide_seal(principal: Principal, facts: AccessFacts, permission: str) -> AccessDecision:
    """Sealing the person's online view or lifting a seal (``c``, ``u``): as
    :func:`decide_self_service` says, but never a proxy's or a legal representative's,
    whatever their grant: a seal protects the person from being made to show the record."""
    decision = decide_self_service(principal, facts, "Consent", permission)
    if decision.allowed and decision.actor_kind in PROXY_KINDS and permission in ("c", "u"):
        return AccessDecision.deny(PROXY_MAY_NOT_MANAGE, decision.actor_kind)
    return decision


def decide_guardian_block(
    principal: Principal, facts: AccessFacts, level: str, hsa_id: str, permission: str
) -> AccessDecision:
    """Setting (``c``), reading (``r``) or lifting (``u``) a guardian block
    (vårdnadshavarspärr) on the care provider or care unit ``hsa_id`` (``level``).

    The person themselves may, from their own-access age, with a ``patient/`` scope for
    ``Consent``; so may care staff of that very unit (or, for a care provider, of that
    provider), on the person's behalf, with a ``user/`` scope for ``Consent``. A guardian
    never may (nor learn that one exists: :mod:`consent.visibility`).
    """
    match principal:
        case Citizen():
            kind = _citizen_as(principal, facts)
            if isinstance(kind, AccessDecision):
                return kind
            if kind == "guardian":
                return AccessDecision.deny(NOT_FOR_GUARDIANS, "guardian")
            if kind in PROXY_KINDS:
                return AccessDecision.deny(PROXY_MAY_NOT_MANAGE, kind)
            if not parse_scopes(principal.scopes, "patient").allows("Consent", permission):
                return AccessDecision.deny("scope", "citizen")
            reason, kind = "self", "citizen"
        case Clinician():
            if not parse_scopes(principal.scopes, "user").allows("Consent", permission):
                return AccessDecision.deny("scope", "clinician")
            own = (
                principal.care_provider_hsa_id
                if level == "care-provider"
                else principal.care_unit_hsa_id
            )
            if level not in ("care-provider", "care-unit") or hsa_id != own:
                return AccessDecision.deny("not-own-unit", "clinician")
            reason, kind = "own-unit", "clinician"
        case _:
            return AccessDecision.deny("patient-only", principal.kind)
    return AccessDecision(
        allowed=True,
        reason=reason,
        actor_kind=kind,
        purpose="PATRQT",
        resource_types=frozenset({"Consent"}),
    )


def decide_self_service_role(
    principal: Principal, resource_type: str, permission: str
) -> AccessDecision:
    """What :func:`decide_self_service` (and, for a clinician, :func:`decide_guardian_block`)
    refuses whoever the patient is: an integrator, a citizen without the ``patient/`` scope,
    a clinician without the ``user/`` scope for ``Consent``. Decided before a request body is
    read, so such a request is refused whatever its body."""
    if isinstance(principal, Clinician) and resource_type == "Consent":
        if not parse_scopes(principal.scopes, "user").allows(resource_type, permission):
            return AccessDecision.deny("patient-only", "clinician")
        return AccessDecision(
            allowed=True,
            reason="own-unit",
            actor_kind="clinician",
            purpose="PATRQT",
            resource_types=frozenset({resource_type}),
        )
    if not isinstance(principal, Citizen):
        return AccessDecision.deny("patient-only", principal.kind)
    if not parse_scopes(principal.scopes, "patient").allows(resource_type, permission):
        return AccessDecision.deny("scope", "citizen")
    return AccessDecision(
        allowed=True,
        reason="self",
        actor_kind="citizen",
        purpose="PATRQT",
        resource_types=frozenset({resource_type}),
    )


def decide_emergency_open(
    principal: Principal, reason: str, served_types: frozenset[str]
) -> AccessDecision:
    """Opening emergency access (nödåtkomst): clinicians only, with ``user/`` read scopes.

    The decision carries the emergency flag and reason, so the opening itself is logged
    as an emergency access.
    """
    if not isinstance(principal, Clinician):
        return AccessDecision.deny("clinician-only", principal.kind)
    types = parse_scopes(principal.scopes, "user").readable(served_types)
    if not types:
        return AccessDecision.deny("scope", "clinician")
    return AccessDecision(
        allowed=True,
        reason="emergency",
        actor_kind="clinician",
        purpose="ETREAT",
        emergency=True,
        emergency_reason=reason,
        resource_types=types,
    )


#: The SMART scope context each kind of principal reads in (see :mod:`consent.scopes`).
_CONTEXT = {"citizen": "patient", "clinician": "user", "integrator": "system"}


def decide_referenced_read(principal: Principal, resource_type: str) -> AccessDecision:
    """Reading what an answer's reference points to that is about no patient (a
    Practitioner, PractitionerRole, Organization or Location): nobody's record, so no
    consent is asked and no person's access log is written; the principal's scopes, in
    their own context, must allow reading the type."""
    context = _CONTEXT[principal.kind]
    if not parse_scopes(principal.scopes, context).readable([resource_type]):
        return AccessDecision.deny("scope", principal.kind)
    return AccessDecision(
        allowed=True,
        reason="referenced",
        actor_kind=principal.kind,
        resource_types=frozenset({resource_type}),
    )
