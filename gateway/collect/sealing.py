"""Sealed chunks of the record cache: at most :data:`CHUNK_SIZE` normalised resources as
zlib-compressed JSON, sealed in an :class:`~gateway.envelope.Envelope` (AES-GCM) under the
cache's key, and the sealer that makes them as the resources arrive.

The cache's key is derived from ``data_key`` for the record cache's purpose
(:mod:`gateway.keys`). The row's key (person, source, type, chunk) is the associated data,
so a chunk moved to another row does not open. Chunks sealed under the earlier key (before
keys were derived with HKDF) are still opened; every write of a type seals all its chunks
afresh, and purging removes what is past the retention, so none is left one retention
period after the change.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapters.base import FhirResource
from gateway.envelope import Envelope, Unopened
from gateway.keys import Purpose, derive_key, legacy_key

#: Most resources in one encrypted chunk.
CHUNK_SIZE = 500
#: zlib level of the chunks' JSON before encryption: FHIR JSON shrinks about eightfold
#: at the fastest level, so a huge record's sealed chunks fit in memory until written.
COMPRESSION_LEVEL = 1


class CacheCorrupt(Exception):
    """A chunk did not decrypt or parse: it is treated as absent, never served."""


class ChunkCipher:
    """Seals chunks of resources and opens them again, under the cache's key from
    ``data_key``."""

    def __init__(self, data_key: str) -> None:
        self._envelope = Envelope(
            derive_key(data_key, Purpose.RECORD_CACHE),
            legacy_key(data_key, Purpose.RECORD_CACHE),
        )

    @staticmethod
    def aad(patient_id: str, source_id: str, resource_type: str, chunk: int) -> bytes:
        """The associated data of one chunk: its row's key."""
        return f"{patient_id}|{source_id}|{resource_type}|{chunk}".encode()

    def seal(self, resources: Sequence[FhirResource], aad: bytes) -> bytes:
        return self._envelope.seal(zlib.compress(orjson.dumps(resources), COMPRESSION_LEVEL), aad)

    def open(self, body: bytes, aad: bytes) -> list[FhirResource]:
        """The resources of a chunk; raises :class:`CacheCorrupt` if it does not open or
        parse."""
        try:
            resources: Any = orjson.loads(zlib.decompress(self._envelope.open(body, aad)))
        except (Unopened, ValueError, zlib.error) as exc:
            raise CacheCorrupt("a cache chunk does not decrypt") from exc
        if not isinstance(resources, list):
            raise CacheCorrupt("a cache chunk is not a list")
        return resources


@dataclass(slots=True)
class Sealed:
    """One (person, source, type)'s resources, sealed: what
    :meth:`~gateway.collect.cache.RecordCache.store` writes."""

    bodies: list[bytes]
    count: int
    #: The resources themselves, if the sealer was asked to keep them and they were few
    #: enough; else None.
    resources: list[FhirResource] | None
    #: Beside kept ``resources``, what was handed in with each (see
    #: :meth:`ChunkSealer.take`); else None.
    digests: list[bytes | None] | None = None
    #: The id of every resource sealed, in order (what the owner index records).
    ids: list[str] = field(default_factory=list)


class KeepBudget:
    """How many more fresh resources may be kept in memory beside their sealed chunks;
    shared by the sealers of one read, so the read keeps at most that many in all."""

    def __init__(self, limit: int) -> None:
        self.left = limit


class ChunkSealer:
    """Seals resources into chunks of :data:`CHUNK_SIZE` as they arrive (a
    :class:`~adapters.base.PageSink` of already normalised resources), keeping them in
    memory too while ``keep`` allows (none without one)."""

    def __init__(
        self, seal: Callable[[int, Sequence[FhirResource]], bytes], keep: KeepBudget | None
    ) -> None:
        self._seal = seal
        self._keep = keep
        self._kept: list[FhirResource] | None = None
        self._digests: list[bytes | None] | None = None
        self.restart()

    def restart(self) -> None:
        self._give_back()
        self._bodies: list[bytes] = []
        self._pending: list[FhirResource] = []
        self._ids: list[str] = []
        self._kept = [] if self._keep is not None else None
        self._digests = [] if self._keep is not None else None
        self.count = 0

    @property
    def keeps(self) -> bool:
        """Whether what it takes is still kept in memory (so digests are worth making)."""
        return self._kept is not None

    def _give_back(self) -> None:
        if self._keep is not None and self._kept is not None:
            self._keep.left += len(self._kept)
        self._kept = self._digests = None

    def take(
        self, resources: list[FhirResource], digests: list[bytes | None] | None = None
    ) -> None:
        """Seal ``resources``; kept, they are kept with their ``digests`` (one each, of
        the caller's making: the dedup plan's), if given."""
        if digests is not None and len(digests) != len(resources):
            raise ValueError("one digest per resource")
        self.count += len(resources)
        self._ids += [str(r.get("id")) for r in resources]
        if self._kept is not None and self._keep is not None:
            if len(resources) <= self._keep.left:
                self._keep.left -= len(resources)
                self._kept += resources
                if digests is None:
                    self._digests = None  # not for every resource: none kept
                elif self._digests is not None:
                    self._digests += digests
            else:  # too many to keep: all of this type is read back from the store
                self._give_back()
        self._pending += resources
        while len(self._pending) >= CHUNK_SIZE:
            self._bodies.append(self._seal(len(self._bodies), self._pending[:CHUNK_SIZE]))
            del self._pending[:CHUNK_SIZE]

    def finish(self) -> Sealed:
        """Seal what is left; an empty type is one empty chunk."""
        if self._pending or not self._bodies:
            self._bodies.append(self._seal(len(self._bodies), self._pending))
            self._pending = []
        return Sealed(self._bodies, self.count, self._kept, self._digests, self._ids)
