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

import heapq
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapters.base import FhirResource
from gateway.collect.spill import SealedChunks
from gateway.envelope import Envelope, Unopened
from gateway.keys import Purpose, derive_key, legacy_key

#: Most resources in one encrypted chunk.
CHUNK_SIZE = 500
#: zlib level of the chunks' JSON before encryption: FHIR JSON shrinks about eightfold
#: at the fastest level, so a huge record's sealed chunks fit in memory until written.
COMPRESSION_LEVEL = 1
#: Serialised JSON gathered before it is handed to the compressor: many small calls cost
#: more than a few large ones.
COMPRESS_BATCH = 64 * 1024


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

    def seal(self, compressed: bytes, aad: bytes) -> bytes:
        """A chunk's body: its resources' JSON array, already compressed (see
        :class:`ChunkSealer`), encrypted."""
        return self._envelope.seal(compressed, aad)

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


class Texts:
    """Short texts in order (ids, owner-index keys), held as one joined string per page: a
    list of 50,000 keys is 4.4 MB of string objects, this 1.7 MB. No text may hold a
    newline (neither a FHIR id nor a key can)."""

    __slots__ = ("_count", "_parts")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._count = 0

    def extend(self, texts: Sequence[str]) -> None:
        if not texts:
            return
        joined = "\n".join(texts)
        if joined.count("\n") != len(texts) - 1:
            raise ValueError("a text holds a newline")
        self._parts.append(joined)
        self._count += len(texts)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        for part in self._parts:
            yield from part.split("\n")

    def merged(self) -> Iterator[str]:
        """Every text in sorted order, where each :meth:`extend` was given its texts
        sorted: the pages merged as they are read, none split whole."""
        return heapq.merge(*(_lines(part) for part in self._parts))


def _lines(part: str) -> Iterator[str]:
    start = 0
    while (end := part.find("\n", start)) != -1:
        yield part[start:end]
        start = end + 1
    yield part[start:]


@dataclass(slots=True)
class Sealed:
    """One (person, source, type)'s resources, sealed: what
    :meth:`~gateway.collect.cache.RecordCache.store` writes."""

    #: The chunks, in order (in memory or, for a large answer, in a temporary file until
    #: stored: see :meth:`close`).
    bodies: SealedChunks
    count: int
    #: The resources themselves, if the sealer was asked to keep them and they were few
    #: enough; else None.
    resources: list[FhirResource] | None
    #: Beside kept ``resources``, what was handed in with each (see
    #: :meth:`ChunkSealer.take`); else None.
    digests: list[bytes | None] | None = None
    #: The owner index's key of every resource sealed (see
    #: :meth:`~gateway.collect.owners.OwnerIndex.ref`), in key order within each page
    #: taken: :meth:`Texts.merged` gives them all in key order.
    refs: Texts = field(default_factory=Texts)
    #: The id of every resource sealed, in the same order as ``refs``.
    ids: Texts = field(default_factory=Texts)

    def close(self) -> None:
        """Let the chunks go once stored (a temporary file is closed at once, not when
        this is collected)."""
        self.bodies.close()


def close_all(sealed: Mapping[str, Sealed]) -> None:
    """Let every part of an answer go once stored (or not to be stored)."""
    for part in sealed.values():
        part.close()


class KeepBudget:
    """How many more fresh resources may be kept in memory beside their sealed chunks;
    shared by the sealers of one read, so the read keeps at most that many in all."""

    def __init__(self, limit: int) -> None:
        self.left = limit


class _ChunkBody:
    """One chunk's JSON array, compressed as its resources arrive: each resource is
    serialised and compressed while the source is still paging, so that sealing the
    last chunks of a complete answer is only a flush and an encryption."""

    def __init__(self) -> None:
        # Made only once a chunk has more than COMPRESS_BATCH of JSON: a compressor holds
        # about 260 kB, and an overview has a chunk open per source and type at once.
        self._zlib: zlib._Compress | None = None
        self._compressed: list[bytes] = []
        self._waiting: list[bytes] = [b"["]
        self._size = 1
        self.count = 0

    def add(self, resources: Sequence[FhirResource]) -> None:
        if not resources:
            return
        items = orjson.dumps(resources)[1:-1]  # the array's items, without its brackets
        if self.count:
            self._waiting.append(b",")
        self._waiting.append(items)
        self._size += len(items) + 1
        self.count += len(resources)
        if self._size >= COMPRESS_BATCH:
            self._compress()

    def _compress(self) -> zlib._Compress:
        if self._zlib is None:
            self._zlib = zlib.compressobj(COMPRESSION_LEVEL)
        self._compressed.append(self._zlib.compress(b"".join(self._waiting)))
        self._waiting, self._size = [], 0
        return self._zlib

    def finish(self) -> bytes:
        """The whole array, compressed (a zlib stream, as :func:`zlib.compress` makes)."""
        self._waiting.append(b"]")
        if self._zlib is None:  # never more than a batch: compressed in one go
            return zlib.compress(b"".join(self._waiting), COMPRESSION_LEVEL)
        self._compressed.append(self._compress().flush())
        return b"".join(self._compressed)


class ChunkSealer:
    """Seals resources into chunks of :data:`CHUNK_SIZE` as they arrive (a
    :class:`~adapters.base.PageSink` of already normalised resources), keeping them in
    memory too while ``keep`` allows (none without one).

    ``seal(number, compressed)`` encrypts one chunk's compressed JSON; ``ref`` is the
    owner index's key of a resource id. Both the compression and the keys are made as
    each page arrives, overlapping the wait for the next one, rather than when the
    answer is complete and its store is all that stands between it and the reader."""

    def __init__(
        self,
        seal: Callable[[int, bytes], bytes],
        keep: KeepBudget | None,
        *,
        ref: Callable[[str], str],
    ) -> None:
        self._seal = seal
        self._keep = keep
        self._ref = ref
        self._kept: list[FhirResource] | None = None
        self._digests: list[bytes | None] | None = None
        self._bodies = SealedChunks()
        self.restart()

    def restart(self) -> None:
        self._give_back()
        self._bodies.close()  # a search started again: its first try's chunks go
        self._bodies = SealedChunks()
        self._body = _ChunkBody()
        self._refs = Texts()
        self._ids = Texts()
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

    def expect(self, total: int) -> None:
        """The source says ``total`` resources are coming in all: if that many would not
        fit in what may still be kept, none is kept from now on (they would be given back
        once too many had come, after being held meanwhile)."""
        kept, keep = self._kept, self._keep
        if kept is not None and keep is not None and total - len(kept) > keep.left:
            self._give_back()

    def take(
        self, resources: list[FhirResource], digests: list[bytes | None] | None = None
    ) -> None:
        """Seal ``resources``; kept, they are kept with their ``digests`` (one each, of
        the caller's making: the dedup plan's), if given."""
        if digests is not None and len(digests) != len(resources):
            raise ValueError("one digest per resource")
        self.count += len(resources)
        ids = [str(r.get("id")) for r in resources]
        refs = [self._ref(resource_id) for resource_id in ids]
        # Each page's keys in key order (its ids in the same order), so the owner index
        # is written in key order (Texts.merged) without every key held at once.
        order = sorted(range(len(refs)), key=refs.__getitem__)
        self._ids.extend([ids[i] for i in order])
        self._refs.extend([refs[i] for i in order])
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
        start = 0
        while start < len(resources):
            part = resources[start : start + CHUNK_SIZE - self._body.count]
            self._body.add(part)
            start += len(part)
            if self._body.count == CHUNK_SIZE:
                self._seal_body()

    def _seal_body(self) -> None:
        self._bodies.append(self._seal(len(self._bodies), self._body.finish()))
        self._body = _ChunkBody()

    def finish(self) -> Sealed:
        """Seal what is left; an empty type is one empty chunk."""
        if self._body.count or not self._bodies:
            self._seal_body()
        return Sealed(self._bodies, self.count, self._kept, self._digests, self._refs, self._ids)
