"""What one access decision lets its reader see: the one place a decision is applied to data.

:mod:`consent.policy` decides (who may read, which types, which care providers and units
are blocked, whether records not yet approved for the patient are held back); this module
applies that decision, the same way for every read: the in-memory read and the streamed
``$everything`` alike, and everything made from what they return (counts, includes, the
patient summary, the source reports).

* A resource is hidden when it was nullified at its source (from everyone), when it is not
  approved for the patient and the patient or their guardian reads, or when its care
  provider or care unit is blocked. A resource that does not say which care unit made it
  is hidden if any blocked unit belongs to its provider's organisation (HSA-ids of one
  organisation share the part before the dash) or, with no provider known either, if any
  unit is blocked at all: blocked data never shows by omission.
* A source whose whole care provider is blocked is not named at all: its status is not
  reported and its Patient does not feed the unified Patient (a protected identity it
  marks is still honoured).
* What was counted of a source before anything was hidden (types it sent that are not
  served, references to what no answer holds) is shown only to a reader from whom
  nothing of the named sources is hidden.
* A guardian block (vårdnadshavarspärr) is itself hidden from guardians: the guardian's
  list of the child's choices leaves it out, and so does the guardian's copy of the
  access log, with every entry that would name what it hides (an actor of the blocked
  provider or unit, a source of the blocked provider).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from consent.decision import NOT_FOR_GUARDIANS, AccessDecision
from consent.entries import AuditEntryPublic
from fhir_profiles.record_status import (
    FhirResource,
    care_tags,
    held_back_from_patient,
    is_nullified,
)
from store.tables import BlockRecord

#: The access log's actions that set or lift a guardian block.
GUARDIAN_BLOCK_ACTIONS = frozenset({"guardian-block-create", "guardian-block-lift"})


class Visibility:
    """What :attr:`decision` lets its reader see."""

    __slots__ = ("decision",)

    def __init__(self, decision: AccessDecision) -> None:
        self.decision = decision

    @property
    def key(self) -> tuple[object, ...]:
        """Everything what is shown depends on (for remembering what was made of it)."""
        decision = self.decision
        return (decision.hidden_providers, decision.hidden_units, decision.hides_unapproved)

    def hides(self, provider: str | None, unit: str | None) -> bool:
        """True when data made by ``provider`` / ``unit`` must not be shown."""
        decision = self.decision
        if provider is not None and provider in decision.hidden_providers:
            return True
        if not decision.hidden_units:
            return False
        if unit is not None:
            return unit in decision.hidden_units
        if provider is None:
            return True
        organisation = provider.split("-", 1)[0]
        return any(u.split("-", 1)[0] == organisation for u in decision.hidden_units)

    def hides_resource(self, resource: FhirResource) -> bool:
        """True when ``resource`` (a unified one, with its care tags) must not be shown."""
        if is_nullified(resource):
            return True
        if self.decision.hides_unapproved and held_back_from_patient(resource):
            return True
        return self.hides(*care_tags(resource))

    def shown(self, resources: Sequence[FhirResource]) -> list[bool]:
        """For each of ``resources``, whether it may be shown."""
        return [not self.hides_resource(r) for r in resources]

    def visible(self, resources: Iterable[FhirResource]) -> list[FhirResource]:
        """What of ``resources`` may be shown, in order."""
        return [r for r in resources if not self.hides_resource(r)]

    @property
    def shows_everything_named(self) -> bool:
        """Nothing of a named source is hidden (no care unit blocked, nothing held back):
        only then may what was counted of a source before hiding (types it sent that are
        not served, references to what no answer holds) be shown, as it says nothing of
        hidden data."""
        return not (self.decision.hidden_units or self.decision.hides_unapproved)

    def names_source(self, care_provider: str | None) -> bool:
        """Whether a source holding data for ``care_provider`` may be named at all."""
        return care_provider not in self.decision.hidden_providers

    def named_sources(self, sources: Iterable[tuple[str, str | None]]) -> set[str]:
        """The ids of the sources, given as (source id, care provider) pairs, that may be
        named (their Patients make the unified one)."""
        return {source_id for source_id, provider in sources if self.names_source(provider)}

    @property
    def hides_guardian_blocks(self) -> bool:
        """The reader is a guardian: guardian blocks, and what they hide, are not theirs to
        know of."""
        return self.decision.actor_kind == "guardian"

    def shows_block(self, block: BlockRecord) -> bool:
        """Whether the reader may know of ``block`` (a guardian never of a guardian block)."""
        return not (self.hides_guardian_blocks and block.hidden_from == "guardians")

    def shows_entry(
        self, entry: AuditEntryPublic, provider_of: Callable[[str], str | None]
    ) -> bool:
        """Whether the reader may see access log entry ``entry``: a guardian sees no entry
        setting or lifting a guardian block (nor their own attempt refused for being a
        guardian), and none naming a care provider or unit hidden from them (the actor's,
        or a source's: ``provider_of`` says whose a source is)."""
        if not self.hides_guardian_blocks:
            return True
        if entry.action in GUARDIAN_BLOCK_ACTIONS or entry.outcome_reason == NOT_FOR_GUARDIANS:
            return False
        decision = self.decision
        if entry.actor_care_provider_hsa_id in decision.hidden_providers:
            return False
        if entry.actor_care_unit_hsa_id in decision.hidden_units:
            return False
        sources = entry.returned.get("sources")
        named = sources if isinstance(sources, list) else []
        return all(self.names_source(provider_of(str(source))) for source in named)
