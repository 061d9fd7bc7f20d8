"""Who may write what to a person's record at its owner: one pure decision, like
:func:`consent.policy.decide` for reads (the rules in plain words are in docs/consent.md).

* A citizen writes for themselves only (not as a guardian), with a ``patient/`` scope
  granting the permission on the type.
* A clinician writes only within a consent the patient gave their care provider or unit
  (emergency access is for reading, never for writing), with a ``user/`` scope.
* An integrator writes only within a consent naming its care provider, with a
  ``system/`` scope granting the permission on the type (``system/Appointment.c``,
  ``.u``, or v1 ``.write``).
* Nobody writes to a care unit or provider the patient has blocked, nor to an unknown
  unit (fail closed).
"""

from __future__ import annotations

from consent.decision import AccessDecision
from consent.policy import AccessFacts, _consented, decide_as_person
from consent.principals import Citizen, Clinician, Integrator, Principal
from consent.scopes import parse_scopes

_CONTEXT = {"citizen": "patient", "clinician": "user", "integrator": "system"}


def _blocked(facts: AccessFacts, provider: str, unit: str) -> bool:
    for block in facts.blocks:
        # A guardian block binds the guardians' reading, not where the person is cared for.
        if block.lifted_at is not None or block.hidden_from != "others":
            continue
        if block.blocked_type == "care-provider" and block.blocked_hsa_id == provider:
            return True
        if block.blocked_type == "care-unit" and block.blocked_hsa_id == unit:
            return True
    return False


def decide_write_role(principal: Principal, resource_type: str, permission: str) -> AccessDecision:
    """What a write is refused whoever the patient is: no scope for it. Decided before
    the body is read, so such a request is refused whatever its body."""
    context = _CONTEXT[principal.kind]
    if not parse_scopes(principal.scopes, context).allows(resource_type, permission):
        return AccessDecision.deny("scope", principal.kind)
    return AccessDecision(
        allowed=True,
        reason="scope",
        actor_kind=principal.kind,
        resource_types=frozenset({resource_type}),
    )


def decide_write(
    principal: Principal,
    facts: AccessFacts,
    resource_type: str,
    permission: str,
    owner: tuple[str, str | None] | None,
) -> AccessDecision:
    """Whether ``principal`` may write (``permission``: ``c`` or ``u``) a
    ``resource_type`` of ``facts.person`` to ``owner`` (care provider, care unit HSA-ids;
    None: whoever the owner is, decided before the owner is looked up)."""
    role = decide_write_role(principal, resource_type, permission)
    if not role.allowed:
        return role
    match principal:
        case Citizen():
            person = decide_as_person(
                principal, facts, resource_type, permission, only_themselves="not-own-record"
            )
            if not person.allowed:
                return person
            reason, kind, purpose = person.reason, person.actor_kind, person.purpose
        case Clinician():
            own = (principal.care_provider_hsa_id, principal.care_unit_hsa_id)
            if not _consented(facts.consents, facts.now, *own):
                return AccessDecision.deny("no-consent", "clinician")
            reason, kind, purpose = "consent", "clinician", "TREAT"
        case Integrator():
            if not _consented(facts.consents, facts.now, principal.care_provider_hsa_id, None):
                return AccessDecision.deny("no-consent", "integrator")
            reason, kind, purpose = "consent", "integrator", "TREAT"
    if owner is not None and owner[1] is None:
        return AccessDecision.deny("unknown-unit", kind)
    if owner is not None and _blocked(facts, owner[0], owner[1] or ""):
        return AccessDecision.deny("blocked-unit", kind)
    return AccessDecision(
        allowed=True,
        reason=reason,
        actor_kind=kind,
        purpose=purpose,
        resource_types=frozenset({resource_type}),
    )
