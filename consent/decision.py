"""Access decisions are values: allowed or not, why, what to hide, and what to log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_profiles.record_status import held_back_from_patient, is_nullified


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """The outcome of one policy evaluation for one principal and one person."""

    allowed: bool
    #: A short machine-readable reason, e.g. ``self``, ``consent``, ``no-consent``; safe to show.
    reason: str
    #: How the principal acts: ``citizen``, ``guardian``, ``clinician``, ``integrator``.
    actor_kind: str = ""
    #: PurposeOfUse (v3-ActReason) for the log: PATRQT, TREAT, ETREAT.
    purpose: str = ""
    emergency: bool = False
    emergency_reason: str | None = None
    #: Care providers and care units (HSA-ids) whose data must not be returned (blocks).
    hidden_providers: frozenset[str] = field(default_factory=frozenset)
    hidden_units: frozenset[str] = field(default_factory=frozenset)
    #: Resource types the principal may read.
    resource_types: frozenset[str] = field(default_factory=frozenset)
    #: Records the responsible clinician has not (or not readably) approved for the patient
    #: are hidden: true when the patient, or their guardian, reads (RIV-TA consumer rule R1).
    hides_unapproved: bool = False

    @classmethod
    def deny(cls, reason: str, actor_kind: str = "") -> AccessDecision:
        return cls(allowed=False, reason=reason, actor_kind=actor_kind)

    def may_read_type(self, resource_type: str) -> bool:
        return self.allowed and resource_type in self.resource_types

    def hides_resource(
        self, resource: dict[str, Any], provider: str | None, unit: str | None
    ) -> bool:
        """True when ``resource`` (produced by ``provider`` / ``unit``) must not be returned.

        Nullified records are hidden from everyone; records not approved for the patient
        from the patient and their guardians (:attr:`hides_unapproved`); blocked data as
        :meth:`hides` says.
        """
        if is_nullified(resource):
            return True
        if self.hides_unapproved and held_back_from_patient(resource):
            return True
        return self.hides(provider, unit)

    def hides(self, provider: str | None, unit: str | None) -> bool:
        """True when data produced by ``provider`` / ``unit`` must not be returned.

        When a resource does not say which care unit produced it, it is hidden if any
        blocked unit belongs to the same organisation as its provider (HSA-ids of one
        organisation share the prefix before the dash), or, with no provider known
        either, if any unit is blocked at all: blocked data must never show by omission.
        """
        if provider is not None and provider in self.hidden_providers:
            return True
        if not self.hidden_units:
            return False
        if unit is not None:
            return unit in self.hidden_units
        if provider is None:
            return True
        organisation = provider.split("-", 1)[0]
        return any(u.split("-", 1)[0] == organisation for u in self.hidden_units)
