"""What a source shares: the categories of a record, and how a source's coverage is
written in its status.

A category is what a person looks for in their record (notes, lab results, medicines),
as NPÖ and 1177 Journalen name the information a care provider shares; each is made of
resource types, and an Observation belongs to one by its category (laboratory, vital
signs, or another: an assessment). A source's coverage says which categories it shares
and since when, from its configuration and from what it says it offers (a FHIR
source's CapabilityStatement, the contracts a legacy source answers): a fact about the
source, never about a person.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

#: Samlad's code system of record categories.
RECORD_CATEGORY_SYSTEM = "https://samlad.se/fhir/CodeSystem/record-category"
#: On a source's issue in the source status: the categories the source shares, since
#: when, and what it was learned from.
SOURCE_COVERAGE_URL = "https://samlad.se/fhir/StructureDefinition/source-coverage"
#: On the issue an empty search adds: which sources were asked and which do not share
#: the category searched.
EMPTY_CATEGORY_URL = "https://samlad.se/fhir/StructureDefinition/empty-category"

#: The observation categories with a record category of their own; any other is an
#: assessment.
_LAB, _VITAL = "laboratory", "vital-signs"


@dataclass(frozen=True, slots=True)
class Category:
    """One record category: its code and the resource types it is made of."""

    code: str
    types: tuple[str, ...]


#: Every category, in the order they are listed.
CATEGORIES: tuple[Category, ...] = (
    Category("encounters", ("Encounter",)),
    Category("notes", ("DocumentReference",)),
    Category("diagnoses", ("Condition",)),
    Category("medications", ("MedicationRequest", "MedicationDispense")),
    Category("vaccinations", ("Immunization",)),
    Category("alerts", ("AllergyIntolerance", "Flag")),
    Category("lab-results", ("Observation",)),
    Category("reports", ("DiagnosticReport",)),
    Category("vital-signs", ("Observation",)),
    Category("assessments", ("Observation",)),
    Category("referrals", ("ServiceRequest",)),
    Category("procedures", ("Procedure",)),
    Category("care-plans", ("CarePlan", "CareTeam")),
    Category("appointments", ("Appointment",)),
)
CATEGORY_CODES: frozenset[str] = frozenset(c.code for c in CATEGORIES)
_BY_CODE = {c.code: c for c in CATEGORIES}


def category_of(resource_type: str, observation_category: str | None = None) -> str | None:
    """The category of a search of ``resource_type`` (an Observation's by the
    observation category searched: none, for a search of every Observation)."""
    if resource_type == "Observation":
        if observation_category is None:
            return None
        return {_LAB: "lab-results", _VITAL: "vital-signs"}.get(observation_category, "assessments")
    return next((c.code for c in CATEGORIES if resource_type in c.types), None)


@dataclass(frozen=True, slots=True)
class SourceCoverage:
    """What one source shares: each category it shares and since when (None: as far
    back as it keeps), the categories it does not share, and where this was learned
    (``configuration``, ``capability-statement``, ``contracts``)."""

    shares: tuple[tuple[str, date | None], ...]
    withholds: tuple[str, ...]
    learned_from: tuple[str, ...]
    since: date | None = None

    def shares_category(self, code: str) -> bool:
        return code not in self.withholds


def coverage(
    *,
    since: date | None,
    since_by_category: Mapping[str, date],
    withheld: Iterable[str],
    offered_types: frozenset[str] | None,
    learned_from: str | None,
) -> SourceCoverage:
    """A source's coverage from its configuration (``since``, per category, the
    categories it withholds) and, once learned, the resource types it offers
    (``offered_types``, from ``learned_from``): a category is shared unless configured
    withheld or none of its types is offered."""
    configured = frozenset(withheld)
    shares: list[tuple[str, date | None]] = []
    withholds: list[str] = []
    for category in CATEGORIES:
        offered = offered_types is None or any(t in offered_types for t in category.types)
        if category.code in configured or not offered:
            withholds.append(category.code)
        else:
            shares.append((category.code, since_by_category.get(category.code, since)))
    sources = ["configuration"] if configured or since or since_by_category else []
    if learned_from is not None:
        sources.append(learned_from)
    return SourceCoverage(tuple(shares), tuple(withholds), tuple(sources), since)


def coverage_extension(covered: SourceCoverage) -> dict[str, Any]:
    """The ``source-coverage`` extension of a source's status issue."""
    parts: list[dict[str, Any]] = [
        {"url": "learnedFrom", "valueCode": c} for c in covered.learned_from
    ]
    if covered.since is not None:
        parts.append({"url": "since", "valueDate": covered.since.isoformat()})
    for code, since in covered.shares:
        share: list[dict[str, Any]] = [{"url": "category", "valueCode": code}]
        if since is not None:
            share.append({"url": "since", "valueDate": since.isoformat()})
        parts.append({"url": "shares", "extension": share})
    parts += [{"url": "withholds", "valueCode": code} for code in covered.withholds]
    return {"url": SOURCE_COVERAGE_URL, "extension": parts}


def coverage_text(covered: SourceCoverage) -> str:
    """What the source does not share, in words, for ``diagnostics`` (empty when it
    shares every category as far back as it keeps)."""
    parts = [
        f"{code} from {since}" for code, since in covered.shares if since and since != covered.since
    ]
    if covered.since is not None:
        parts.append(f"{'the rest' if parts else 'everything'} from {covered.since}")
    text = "shares " + ", ".join(parts) if parts else ""
    if covered.withholds:
        text += ("; " if text else "") + "does not share " + ", ".join(covered.withholds)
    return text


def category_types(code: str) -> tuple[str, ...]:
    """The resource types of category ``code``."""
    return _BY_CODE[code].types
