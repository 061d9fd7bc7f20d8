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
* A shown resource does not tell of hidden ones through its references: a report's
  ``result`` (its Observations) and ``basedOn`` (the referral it answers) leave out each
  reference to a resource the decision hides. Where the referenced type was not read with
  the report, they are left out whenever some may be hidden: a care unit is blocked, or
  the report's source states approval or nullification on its records (the references
  name that source's records).
* A source whose whole care provider is blocked is not named at all: its status is not
  reported and its Patient does not feed the unified Patient (a protected identity it
  marks is still honoured).
* What was counted of a source before anything was hidden (types it sent that are not
  served, references to what no answer holds) is shown only to a reader from whom
  nothing of the named sources is hidden.
* What the person's online view withholds (:mod:`consent.online`: their seals, their
  delayed release, the region's exclusions) is hidden from whoever reads it, like a
  record not approved for the patient; sealed or excluded care providers and units are
  hidden as blocked ones are (never named, unknown units failing closed).
* A guardian block (vårdnadshavarspärr) is itself hidden from guardians: the guardian's
  list of the child's choices leaves it out, and so does the guardian's copy of the
  access log, with every entry that would name what it hides (an actor of the blocked
  provider or unit, a source of the blocked provider).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from types import MappingProxyType

from consent.decision import NOT_FOR_GUARDIANS, AccessDecision
from consent.entries import AuditEntryPublic
from consent.online import withholds
from fhir_profiles.record_status import (
    FhirResource,
    care_tags,
    concerned_units,
    held_back_from_patient,
    is_nullified,
    observation_categories,
    states_record_status,
)
from store.tables import BlockRecord

#: The access log's actions that set or lift a guardian block.
GUARDIAN_BLOCK_ACTIONS = frozenset({"guardian-block-create", "guardian-block-lift"})

#: Per type, the references (element -> the type it names) a shown resource leaves out
#: when what they name is hidden: they would tell of it.
CONCEALED_REFERENCES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"DiagnosticReport": MappingProxyType({"result": "Observation", "basedOn": "ServiceRequest"})}
)
#: The types :data:`CONCEALED_REFERENCES` name.
CONCEALED_TYPES = frozenset(t for table in CONCEALED_REFERENCES.values() for t in table.values())


def resource_key(resource: FhirResource) -> str:
    """``Type/id``: how references name a unified resource."""
    return f"{resource.get('resourceType')}/{resource.get('id')}"


class Visibility:
    """What :attr:`decision` lets its reader see."""

    __slots__ = ("decision",)

    def __init__(self, decision: AccessDecision) -> None:
        self.decision = decision

    @property
    def key(self) -> tuple[object, ...]:
        """Everything what is shown depends on (for remembering what was made of it)."""
        decision = self.decision
        return (
            decision.hidden_providers,
            decision.hidden_units,
            decision.hides_unapproved,
            decision.withheld,
            decision.observation_categories,
        )

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
        if withholds(self.decision.withheld, resource):
            return True
        if self._outside_categories(resource):
            return True
        provider, unit = care_tags(resource)
        if self.hides(provider, unit):
            return True
        hidden_units = self.decision.hidden_units
        return bool(hidden_units) and any(u in hidden_units for u in concerned_units(resource))

    def _outside_categories(self, resource: FhirResource) -> bool:
        """An Observation of no category the decision shows (a proxy's grant for lab
        results shows the laboratory ones only)."""
        wanted = self.decision.observation_categories
        if wanted is None or resource.get("resourceType") != "Observation":
            return False
        return not wanted & observation_categories(resource)

    def shown(self, resources: Sequence[FhirResource]) -> list[bool]:
        """For each of ``resources``, whether it may be shown."""
        return [not self.hides_resource(r) for r in resources]

    def visible(self, resources: Iterable[FhirResource]) -> list[FhirResource]:
        """What of ``resources`` may be shown, in order."""
        return [r for r in resources if not self.hides_resource(r)]

    def visible_record(
        self, sources: Sequence[Sequence[FhirResource]], read: Collection[str]
    ) -> list[list[FhirResource]]:
        """What of each source's resources may be shown, in order, each as
        :meth:`concealing` makes it. ``read`` names the types read: of those, every
        hidden resource is among ``sources``."""
        flags = [self.shown(resources) for resources in sources]
        hidden = {
            resource_key(resource)
            for resources, shown in zip(sources, flags, strict=True)
            for resource, show in zip(resources, shown, strict=True)
            if not show and resource.get("resourceType") in CONCEALED_TYPES
        }
        return [
            [
                self.concealing(resource, hidden, read)
                for resource, show in zip(resources, shown, strict=True)
                if show
            ]
            for resources, shown in zip(sources, flags, strict=True)
        ]

    def concealing(
        self, resource: FhirResource, hidden: Collection[str], read: Collection[str]
    ) -> FhirResource:
        """A shown ``resource`` without the references (:data:`CONCEALED_REFERENCES`) to
        what is hidden: to a resource in ``hidden`` (``Type/id``), or, to a type not in
        ``read``, to any when some may be hidden (a care unit blocked, or ``resource``'s
        source states approval or nullification on its records). A copy when anything is left
        out, else ``resource`` itself (never changed: it may be shared data)."""
        table = CONCEALED_REFERENCES.get(str(resource.get("resourceType")))
        if table is None:
            return resource
        # What it names of a type not read may be hidden when a unit is blocked (any
        # record may name any unit), when the online view withholds something (a sealed
        # period, a kind of record), or when its source states approval or nullification
        # (its records are the same source's: a source without either hides none).
        decision = self.decision
        unsure = bool(decision.hidden_units or decision.withheld) or states_record_status(resource)
        changed: FhirResource = {}
        for element, target in table.items():
            references = resource.get(element)
            if not isinstance(references, list):
                continue
            blind = target not in read and unsure
            kept = [
                r
                for r in references
                if not (
                    isinstance(r, dict)
                    and str(r.get("reference", "")).startswith(f"{target}/")
                    and (blind or r["reference"] in hidden)
                )
            ]
            if len(kept) != len(references):
                changed[element] = kept
        if not changed:
            return resource
        concealed = {k: v for k, v in resource.items() if k not in changed}
        concealed.update({k: v for k, v in changed.items() if v})
        return concealed

    @property
    def shows_everything_named(self) -> bool:
        """Nothing of a named source is hidden (no care unit blocked, nothing held back or
        withheld from the online view):
        only then may what was counted of a source before hiding (types it sent that are
        not served, references to what no answer holds) be shown, as it says nothing of
        hidden data."""
        decision = self.decision
        return not (decision.hidden_units or decision.hides_unapproved or decision.withheld)

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
