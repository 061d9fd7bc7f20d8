"""The person's online view: what is kept from whoever reads the record as the person or
for them, and from nobody else.

Three things narrow it, on top of what every reader is denied (docs/consent.md):

* the person's **seals** (spärr av egen åtkomst): their whole record, a care provider, a
  care unit, or a period of record dates, until they lift it;
* their **delayed release**: entries made in the last N days (default 14) are held back
  (never what the person reported themselves, from them);
* the region's **exclusions** (configuration): care units, by HSA-id or by kind, and
  record kinds that never reach the person online (forensic psychiatry, LSS, Barnahus,
  third-party information), applied as ``approvedForPatient = false`` is.

One predicate, :func:`reads_online`, says whom they bind: every principal reading as the
person or acting for them (the person, a guardian, a proxy). Clinicians and integrators
are never bound: a consented clinician still reads what the person sealed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from consent.decision import PROXY_KINDS, AccessDecision, Withheld
from fhir_profiles.own_data import is_patient_reported
from fhir_profiles.record_dates import RECORD_DATE_FIELDS, record_date
from fhir_profiles.record_status import FhirResource
from store.tables import SealRecord, as_utc

#: How principals act who read the person's own online view: the person themselves, a
#: guardian, a proxy (ombud).
ONLINE_READERS = frozenset({"citizen", "guardian"}) | PROXY_KINDS

#: Delayed release holds entries back this many days unless the person says otherwise.
DEFAULT_RELEASE_DELAY_DAYS = 14
#: The longest delay a person may choose.
MAX_RELEASE_DELAY_DAYS = 365


class OnlineExclusions(BaseModel):
    """What the region never shows the person online (``[gateway.online_exclusions]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Care units (HSA-ids) whose records never reach the person online.
    care_units: tuple[str, ...] = ()
    #: Kinds of care unit never shown online (say ``rattspsykiatri``, ``lss``,
    #: ``barnahus``): each names its units in ``unit_kinds``.
    excluded_unit_kinds: tuple[str, ...] = ()
    #: The region's care units by kind: kind -> HSA-ids.
    unit_kinds: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    #: Record kinds never shown online: a resource type (``Flag``), or
    #: ``Type|system|code`` matching a coding of its ``category``, ``type`` or ``code``.
    record_kinds: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _known(self) -> Self:
        unknown = sorted(set(self.excluded_unit_kinds) - set(self.unit_kinds))
        if unknown:
            raise ValueError(f"excluded_unit_kinds names kinds unit_kinds lacks: {unknown}")
        for kind in self.record_kinds:
            parts = kind.split("|")
            if parts[0] not in RECORD_DATE_FIELDS or len(parts) not in (1, 3):
                raise ValueError(f"record_kinds: {kind!r} is not a record type or Type|system|code")
        return self

    @property
    def units(self) -> frozenset[str]:
        """Every care unit excluded, by HSA-id or by kind."""
        by_kind = (u for kind in self.excluded_unit_kinds for u in self.unit_kinds[kind])
        return frozenset((*self.care_units, *by_kind))


def reads_online(decision: AccessDecision) -> bool:
    """Whether ``decision``'s principal reads the person's own online view (the person, a
    guardian, a proxy): the one predicate the seals, the delayed release and the
    region's exclusions bind by."""
    return decision.allowed and decision.actor_kind in ONLINE_READERS


def withhold_online(
    decision: AccessDecision,
    seals: Iterable[SealRecord],
    exclusions: OnlineExclusions,
    now: datetime,
) -> AccessDecision:
    """``decision`` narrowed to the person's online view: the sealed and excluded care
    providers and units hidden with the blocked ones, the rest in ``withheld``."""
    providers, units = set(decision.hidden_providers), set(decision.hidden_units)
    everything = False
    periods: list[tuple[datetime, datetime]] = []
    made_after: datetime | None = None
    for seal in seals:
        if seal.lifted_at is not None:
            continue
        if seal.kind == "record":
            everything = True
        elif seal.kind == "care-provider" and seal.hsa_id:
            providers.add(seal.hsa_id)
        elif seal.kind == "care-unit" and seal.hsa_id:
            units.add(seal.hsa_id)
        elif seal.kind == "period" and seal.data_start and seal.data_end:
            end = as_utc(seal.data_end) + timedelta(days=1)
            periods.append((as_utc(seal.data_start), end))
        elif seal.kind == "delayed-release":
            days = seal.delay_days or DEFAULT_RELEASE_DELAY_DAYS
            # To the minute below: a little more held back, and one cut-off a minute.
            cutoff = (now - timedelta(days=days)).replace(second=0, microsecond=0)
            made_after = cutoff if made_after is None else min(made_after, cutoff)
    withheld = Withheld(
        everything=everything,
        periods=tuple(sorted(periods)),
        made_after=made_after,
        kinds=frozenset(exclusions.record_kinds),
        reporter_reads=decision.actor_kind == "citizen",
    )
    return replace(
        decision,
        hidden_providers=frozenset(providers),
        hidden_units=frozenset(units | exclusions.units),
        withheld=withheld,
    )


def _codings(resource: FhirResource) -> Iterable[str]:
    """``system|code`` of each coding of the resource's category, type and code."""
    for element in ("category", "type", "code"):
        value = resource.get(element)
        concepts = value if isinstance(value, list) else [value]
        for concept in concepts:
            codings = concept.get("coding") if isinstance(concept, dict) else None
            for coding in codings if isinstance(codings, list) else ():
                if isinstance(coding, dict):
                    yield f"{coding.get('system')}|{coding.get('code')}"


def withholds(withheld: Withheld, resource: FhirResource) -> bool:
    """Whether ``withheld`` keeps the entry ``resource`` from the online view. The Patient
    is not an entry. A sealed period hides an entry it cannot date (fail closed); delayed
    release holds back only what it can date as newer (an undated entry would otherwise
    never be released), and never what the reader reported themselves."""
    resource_type = str(resource.get("resourceType"))
    if not withheld or resource_type not in RECORD_DATE_FIELDS:
        return False
    if withheld.everything:
        return True
    if withheld.kinds and (
        resource_type in withheld.kinds
        or any(f"{resource_type}|{c}" in withheld.kinds for c in _codings(resource))
    ):
        return True
    if not (withheld.periods or withheld.made_after):
        return False
    made = record_date(resource)
    if withheld.periods and (
        made is None or any(start <= made < end for start, end in withheld.periods)
    ):
        return True
    if withheld.reporter_reads and is_patient_reported(resource):
        return False  # what the person reported themselves is never held back from them
    return withheld.made_after is not None and made is not None and made > withheld.made_after
