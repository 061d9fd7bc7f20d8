"""Cached resources this process has decoded, kept in memory by (person, source, type)
with the sync time of their version, so a read of that same version skips decrypting
and parsing them. Bounded by a count of resources (``memory_budget``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from adapters.base import FhirResource
from gateway.memo import BoundedMemo


@dataclass(slots=True)
class Decoded:
    """One (person, source, type)'s resources as decoded, of the version synced then."""

    synced_at: datetime
    resources: list[FhirResource]
    #: Their duplicate digests, where made as they were normalised; else None.
    digests: list[bytes | None] | None = None


class DecodedMemory:
    """At most ``budget`` decoded resources in all, least recently used out first."""

    def __init__(self, budget: int) -> None:
        self._memo: BoundedMemo[tuple[str, str, str], Decoded] = BoundedMemo(budget)

    @property
    def budget(self) -> int:
        return self._memo.budget

    def get(
        self, patient_id: str, source_id: str, resource_type: str, synced_at: datetime
    ) -> Decoded | None:
        """The resources of the version synced at ``synced_at``, if remembered."""
        remembered = self._memo.get((patient_id, source_id, resource_type))
        if remembered is not None and remembered.synced_at == synced_at:
            return remembered
        return None

    def remember(
        self,
        patient_id: str,
        source_id: str,
        resource_type: str,
        synced_at: datetime,
        resources: list[FhirResource],
        digests: list[bytes | None] | None = None,
    ) -> None:
        self._memo.put(
            (patient_id, source_id, resource_type),
            Decoded(synced_at, resources, digests),
            len(resources),
        )
