"""What references in answers point to beyond a person's record: the Practitioners,
PractitionerRoles, Organizations and Locations (``REFERENCED_TYPES``) of each source.

They are about no patient, so they are not part of anyone's cached record. A reference
``Practitioner/{source}.{local}`` in an answer is read from that source by its local id
when asked for (``GET /fhir/Practitioner/{source}.{local}``), admitted and normalised like
the record's resources (gateway ids, ``meta.source``, the care provider tag), and kept in
memory for ``directory_fresh_seconds``, what a source does not hold too. Only sources whose
adapter can read by id (:class:`adapters.base.ReadableSource`) are asked; a reference to
any other source's resource reads as not found.

An id made a hash because its source's local id was too long (see
:func:`gateway.merge.record.gateway_id`) names no local id and reads as not found.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from adapters.base import FhirResource, supports_reads
from fhir_profiles.resource_types import REFERENCED_TYPES
from gateway.memo import Recent
from gateway.merge.record import normalise_referenced
from gateway.sources import Source

#: Most referenced resources kept in memory (what sources do not hold counts too).
DIRECTORY_ENTRIES = 10_000


class Directory:
    """Reads referenced resources from the source that named them, remembering them."""

    def __init__(self, sources: Sequence[Source], fresh_seconds: float) -> None:
        # Longest id first: a source id that is a prefix of another's never takes its ids.
        self._sources = sorted(sources, key=lambda s: len(s.id), reverse=True)
        self._known: Recent[tuple[str, str, str], tuple[FhirResource | None]] = Recent(
            fresh_seconds, DIRECTORY_ENTRIES
        )

    def source_of(self, resource_id: str) -> tuple[Source, str] | None:
        """The source a gateway id names, and its local id there (None: no such source)."""
        for source in self._sources:
            prefix = f"{source.id}."
            if resource_id.startswith(prefix) and len(resource_id) > len(prefix):
                return source, resource_id[len(prefix) :]
        return None

    async def read(self, resource_type: str, resource_id: str) -> FhirResource | None:
        """The resource as the gateway serves it, or None if no source holds it. Raises
        the source's :class:`adapters.errors.SourceError` when it cannot be asked."""
        if resource_type not in REFERENCED_TYPES:
            raise ValueError(f"{resource_type} is not a referenced type")
        found = self.source_of(resource_id)
        if found is None:
            return None
        source, local = found
        adapter = source.adapter
        if not supports_reads(adapter):
            return None
        key = (source.id, resource_type, local)
        known = self._known.get(key)
        if known is None:
            answered = await adapter.read_many(resource_type, [local])
            resource = next(
                (
                    normalised
                    for candidate in answered
                    if isinstance(candidate, dict) and candidate.get("id") == local
                    if (normalised := normalise_referenced(candidate, source, resource_type))
                ),
                None,
            )
            known = (resource,)
            self._known.put(key, known)
        # Callers own what they are given: a copy, never the remembered one.
        return None if known[0] is None else orjson.loads(orjson.dumps(known[0]))
