"""The adapter for sources that speak FHIR R4 REST (``kind = "fhir-r4"``).

Dialects differ in identifier system and format, paging habits and how patient search
is sent; :class:`FhirR4Dialect` holds those settings, read from ``[sources.dialect]``.

Page-cap behaviour: reaching ``page_cap`` raises ``SourceProtocolError("page cap
reached")``. A silently truncated list would look complete to the overview, which must
instead say that this source is missing; an operator who meets the cap for real
patients raises it in the configuration.

Safety rules that hold for every request:

* identity numbers go in a POST form body by default, never in a URL that httpx, a
  proxy or an access log could record;
* next links are followed only on the configured scheme, host, port and base path, and
  never twice; redirects are not followed at all, so a hostile source cannot make the
  gateway call other hosts;
* bodies are streamed and reading stops at ``max_response_bytes``;
* error messages name the source, the resource type and the HTTP status, never the
  identity number, a query string or the upstream body.

The package: :mod:`~adapters.fhir_r4.adapter` (the adapter: patient search, paging),
:mod:`~adapters.fhir_r4.dialect` (the settings, and which identifiers to search for) and
:mod:`~adapters.fhir_r4.bundles` (reading a searchset Bundle).
"""

from __future__ import annotations

from adapters.fhir_r4.adapter import FHIR_JSON, FhirR4Adapter, SearchResult
from adapters.fhir_r4.dialect import (
    DEFAULT_MAX_RESPONSE_BYTES,
    FhirR4Dialect,
    format_identifier,
    parse_dialect,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "FHIR_JSON",
    "FhirR4Adapter",
    "FhirR4Dialect",
    "SearchResult",
    "format_identifier",
    "parse_dialect",
]
