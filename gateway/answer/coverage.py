"""What an answer says of what may be missing from it, beside each source's status and
coverage (:mod:`gateway.answer.bundles`): an empty search names the sources asked and
those that do not share what was searched; a care provider's reader (a clinician, an
integrator) is always told that information may be blocked, as in NPÖ.

Neither says anything of the person: which sources share a category is a fact about the
sources, and the notice on blocks is the same for every clinician and integrator,
whether anything is blocked or hidden from them or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_profiles.codes import SOURCE_STATUS_SYSTEM
from fhir_profiles.coverage import EMPTY_CATEGORY_URL, category_of
from gateway.sources import SourceReport, SourceStatus

#: The codes (in the source-status code system) of the two notices.
MAY_BE_BLOCKED = "may-be-blocked"
EMPTY_CATEGORY = "empty-category"

#: The readers told that information may be blocked: those reading for a care provider.
_CARE_PROVIDER_READERS = frozenset({"clinician", "integrator"})

_BLOCKED_NOTICE: dict[str, Any] = {
    "severity": "information",
    "code": "informational",
    "details": {
        "coding": [{"system": SOURCE_STATUS_SYSTEM, "code": MAY_BE_BLOCKED}],
        "text": "Information may be blocked",
    },
    "diagnostics": (
        "The patient may have blocked information held by some care providers or care"
        " units; blocked information is not shown, and this answer does not say whether"
        " any is, what it is or where it is held"
    ),
}

#: The Observation categories a search of every Observation covers.
_OBSERVATION_CATEGORIES = ("lab-results", "vital-signs", "assessments")


def blocked_notice(actor_kind: str) -> list[dict[str, Any]]:
    """The notice that information may be blocked, for a care provider's reader: the
    same every time (it never depends on what is blocked or hidden)."""
    return [dict(_BLOCKED_NOTICE)] if actor_kind in _CARE_PROVIDER_READERS else []


def _searched_category(params: Sequence[tuple[str, str]]) -> str | None:
    for name, value in params:
        if name == "category" and value and "," not in value:
            return value.rsplit("|", 1)[-1]
    return None


def empty_category_issue(
    resource_type: str, params: Sequence[tuple[str, str]], reports: Sequence[SourceReport]
) -> dict[str, Any] | None:
    """For a search of ``resource_type`` (with ``params``) that found nothing: the
    issue naming the sources asked and those that do not share its category; None for
    a type of no category."""
    observed = _searched_category(params) if resource_type == "Observation" else None
    category = category_of(resource_type, observed)
    categories: tuple[str, ...] = (category,) if category is not None else ()
    if resource_type == "Observation" and category is None:
        categories = _OBSERVATION_CATEGORIES
    if not categories:
        return None
    asked: list[SourceReport] = []
    not_shared: list[SourceReport] = []
    for report in reports:
        covered = report.coverage
        if covered is not None and not any(covered.shares_category(c) for c in categories):
            not_shared.append(report)
        elif report.status is not SourceStatus.NOT_ASKED:
            asked.append(report)
    named = category or resource_type
    text = f"No {named}: asked " + (", ".join(r.name for r in asked) or "no source")
    if not_shared:
        text += "; not shared by " + ", ".join(r.name for r in not_shared)
    extension: list[dict[str, Any]] = [{"url": "type", "valueCode": resource_type}]
    extension += [{"url": "category", "valueCode": c} for c in categories]
    extension += [{"url": "asked", "valueString": r.source_id} for r in asked]
    extension += [{"url": "notShared", "valueString": r.source_id} for r in not_shared]
    return {
        "severity": "information",
        "code": "not-found",
        "details": {
            "coding": [{"system": SOURCE_STATUS_SYSTEM, "code": EMPTY_CATEGORY}],
            "text": f"No {named}",
        },
        "diagnostics": text,
        "extension": [{"url": EMPTY_CATEGORY_URL, "extension": extension}],
    }


def notices(
    actor_kind: str,
    resource_type: str | None,
    params: Sequence[tuple[str, str]],
    found: int,
    reports: Sequence[SourceReport],
) -> list[dict[str, Any]]:
    """The notices of an answer: the empty category (a search of one type that found
    nothing) and the notice on blocks (for a care provider's reader)."""
    issues = blocked_notice(actor_kind)
    if resource_type is not None and found == 0:
        empty = empty_category_issue(resource_type, params, reports)
        if empty is not None:
            issues.insert(0, empty)
    return issues
