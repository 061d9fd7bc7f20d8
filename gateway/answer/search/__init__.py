"""FHIR search over one person's unified record, held in memory.

The record is fetched, unified and filtered by consent before anything here runs; this
package only answers "which of these resources match, in what order, with which
elements". It is pure: nothing is fetched, nothing is mutated.

    parse_search(type, params, strict=...)  -> SearchSpec   (400 for malformed values)
    apply(spec, resources)                  -> the matches, filtered and sorted
    include_types(spec)                     -> the types its includes may need (read with it)
    included(spec, page, candidates)        -> the page's included resources
    elements(spec, resource)                -> the subsetted copy (_elements, _summary=data)
    search_params_for(type)                 -> what the CapabilityStatement may promise

One module per job, each using only those above it:

    params    which parameters and references each served type has, and where they are
    dates     date values: prefixes and precision, as ranges of UTC microseconds
    parse     request parameters into a SearchSpec
    values    the values a parameter sees in a resource
    sort      the order of the matches
    match     which resources match (``apply``)
    include   ``_include`` and ``_revinclude``
    elements  ``_elements`` and ``_summary=data``
"""

from __future__ import annotations

from gateway.answer.search.elements import SUBSETTED_TAG, elements
from gateway.answer.search.include import include_types, included
from gateway.answer.search.match import apply
from gateway.answer.search.params import (
    PROVENANCE_TARGET,
    includes_for,
    revincludes_for,
    search_params_for,
    served_types,
    sortable_for,
)
from gateway.answer.search.parse import (
    DEFAULT_COUNT,
    MAX_COUNT,
    SearchSpec,
    parse_search,
    safe_name,
)

__all__ = [
    "DEFAULT_COUNT",
    "MAX_COUNT",
    "PROVENANCE_TARGET",
    "SUBSETTED_TAG",
    "SearchSpec",
    "apply",
    "elements",
    "include_types",
    "included",
    "includes_for",
    "parse_search",
    "revincludes_for",
    "safe_name",
    "search_params_for",
    "served_types",
    "sortable_for",
]
