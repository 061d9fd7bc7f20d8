"""Access decisions are values: allowed or not, why, what to hide, and what to log."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

#: Why a guardian may not set, read or lift a guardian block: the refusal is kept from
#: the guardian too (see :mod:`consent.visibility`).
NOT_FOR_GUARDIANS = "not-for-guardians"

#: How a citizen acts for another adult: by the person's proxy grant, or as their legal
#: representative from the relations register. Logged as themselves, on behalf of the person.
PROXY_KINDS = frozenset({"proxy", "representative"})


@dataclass(frozen=True, slots=True)
class Withheld:
    """What of the record is kept from the person's online view, beyond the care providers
    and units hidden (see :mod:`consent.online`): for whoever reads as the person or for
    them (the person, a guardian, a proxy), never for clinicians or integrators."""

    #: The whole record is sealed: no entry is shown.
    everything: bool = False
    #: Sealed spans of record dates, each ``[start, end)`` (aware moments).
    periods: tuple[tuple[datetime, datetime], ...] = ()
    #: Delayed release: entries made after this moment are held back.
    made_after: datetime | None = None
    #: Record kinds the region never shows online: a resource type, or
    #: ``Type|system|code`` (a coding of its category, type or code).
    kinds: frozenset[str] = frozenset()
    #: The reader is the person: delayed release does not hold back what they reported
    #: themselves (their own source), which seals and exclusions still may.
    reporter_reads: bool = False

    def __bool__(self) -> bool:
        return self.everything or bool(self.periods or self.kinds) or self.made_after is not None


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """The outcome of one policy evaluation for one principal and one person."""

    allowed: bool
    #: A short machine-readable reason, e.g. ``self``, ``consent``, ``no-consent``; safe to show.
    reason: str
    #: How the principal acts: ``citizen``, ``guardian``, ``proxy`` (by the person's
    #: grant), ``representative`` (god man, förvaltare), ``clinician``, ``integrator``.
    actor_kind: str = ""
    #: PurposeOfUse (v3-ActReason) for the log: PATRQT, TREAT, ETREAT.
    purpose: str = ""
    emergency: bool = False
    emergency_reason: str | None = None
    #: Care providers and care units (HSA-ids) whose data must not be returned (blocks);
    #: applied to data by :mod:`consent.visibility`, the one place that hides.
    hidden_providers: frozenset[str] = field(default_factory=frozenset)
    hidden_units: frozenset[str] = field(default_factory=frozenset)
    #: Resource types the principal may read.
    resource_types: frozenset[str] = field(default_factory=frozenset)
    #: Records the responsible clinician has not (or not readably) approved for the patient
    #: are hidden: true when the patient, or their guardian, reads (RIV-TA consumer rule R1).
    hides_unapproved: bool = False
    #: Entries kept from the person's online view by their seals, their delayed release
    #: and the region's exclusions (the sealed and excluded care providers and units are
    #: in ``hidden_providers`` and ``hidden_units``).
    withheld: Withheld = Withheld()
    #: Only Observations of these categories (``observation-category`` codes) are shown;
    #: None shows every Observation the types allow (a proxy's grant may cover only the
    #: laboratory ones: :mod:`fhir_profiles.record_categories`).
    observation_categories: frozenset[str] | None = None

    @classmethod
    def deny(cls, reason: str, actor_kind: str = "") -> AccessDecision:
        return cls(allowed=False, reason=reason, actor_kind=actor_kind)

    def may_read_type(self, resource_type: str) -> bool:
        return self.allowed and resource_type in self.resource_types
