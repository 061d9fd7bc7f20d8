"""Which resources match a search: each filter's values OR-ed, the filters AND-ed, the
matches then put in the search's order (:mod:`gateway.answer.search.sort`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from adapters.base import FhirResource
from gateway.answer.search.dates import DateCriterion
from gateway.answer.search.parse import Filter, SearchSpec, Token
from gateway.answer.search.sort import in_order
from gateway.answer.search.values import Row


def apply(spec: SearchSpec, resources: Sequence[FhirResource]) -> list[FhirResource]:
    """The resources of ``spec.resource_type`` that match every filter, sorted.

    Without ``_sort`` the order is by id, so it does not depend on which source answered
    first; ties in any sort fall back to id order, and resources without a sort value
    come last in either direction. The inputs are not changed.
    """
    if not spec.filters and not spec.sort:  # the common page: one type, in id order
        wanted = spec.resource_type
        return sorted((r for r in resources if r.get("resourceType") == wanted), key=_id_of)
    rows = []
    for resource in resources:
        if resource.get("resourceType") != spec.resource_type:
            continue
        row = Row(resource)
        if all(_matches(f, row.values(f.name, f.param)) for f in spec.filters):
            rows.append(row)
    return [row.resource for row in in_order(spec, rows)]


def _id_of(resource: FhirResource) -> str:
    return str(resource.get("id", ""))


def _matches(criterion: Filter, values: list[Any]) -> bool:
    """Whether a resource with these values of the parameter (see
    :func:`gateway.answer.search.values.extract`) matches."""
    if criterion.missing is not None:
        return (not values) == criterion.missing
    if criterion.param.kind == "date":
        hit = any(date_matches(c, lo, hi) for lo, hi in values for c in criterion.dates)
    elif criterion.param.kind == "string":
        hit = any(string_matches(criterion, value) for value in values)
    else:
        hit = any(
            _token_matches(t, system, code) for system, code in values for t in criterion.tokens
        )
    return hit != criterion.negate


def string_matches(criterion: Filter, value: str) -> bool:
    """FHIR string search: by default the value starts with one of the criterion's,
    ignoring case and accents; ``:contains`` anywhere in it; ``:exact`` exactly equal."""
    if criterion.mode == "exact":
        return value in criterion.strings
    folded = folded_text(value)
    wanted = (folded_text(s) for s in criterion.strings)
    if criterion.mode == "contains":
        return any(w in folded for w in wanted)
    return any(folded.startswith(w) for w in wanted)


def folded_text(text: str) -> str:
    """``text`` for comparing while ignoring case and accents (``Åsa`` as ``asa``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _token_matches(token: Token, system: str | None, code: str) -> bool:
    if token.check_system and system != token.system:
        return False
    return token.code is None or code == token.code


def date_matches(criterion: DateCriterion, rlo: int, rhi: int) -> bool:
    """Whether a value spanning [rlo, rhi) matches ``criterion`` (FHIR R4 search,
    "date": prefixes compare the target's range with the value's)."""
    lo, hi = criterion.lo, criterion.hi
    within = lo <= rlo and rhi <= hi
    match criterion.prefix:
        case "eq":
            return within
        case "ne":
            return not within
        case "gt":
            return rhi > hi
        case "lt":
            return rlo < lo
        case "ge":
            return rhi > hi or within
        case "le":
            return rlo < lo or within
        case "sa":
            return rlo >= hi
        case "eb":
            return rhi <= lo
        case _:  # "ap": the range was widened at parse time; any overlap counts
            return rlo < hi and rhi > lo
