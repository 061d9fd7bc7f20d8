"""The cache of normalised data: each source's answer about each person, encrypted at rest.

What is kept is one source's normalised answer (:mod:`gateway.merge.record`) for one person and
one resource type (the source's own Patient is kept as type ``Patient``): data already
admitted, normalised and rewritten to gateway ids, so a cached read only merges. It is
split into chunks of at most :data:`CHUNK_SIZE` resources, so that a huge record can be
written as it arrives (:class:`ChunkSealer`) and read a chunk at a time
(:class:`CacheSnapshot`).

* Every chunk is compressed (zlib) and sealed in an :class:`~gateway.envelope.Envelope`
  (AES-GCM) under the cache's key derived from ``data_key`` (:mod:`gateway.keys`); the
  row's key (person, source, type, chunk) is the associated data, so a chunk moved to
  another row does not decrypt. Chunks sealed under the earlier key are still read; every
  write seals afresh, and purging removes what is past the retention, so none is left one
  retention period after the change. People are known by their opaque id only.
* Each (person, source, type) has a sync row: when it was last refreshed from the source
  (``synced_at``) and when last in full (``full_synced_at``; a refresh by last update
  cannot see deletions, so a full one is made at a configured interval).
* Rows older than the retention are never served and are removed by :meth:`purge`.

Nothing here decides who may see what: consent is evaluated on every read, after the
cache, by :class:`gateway.access.reader.RecordReader`.
"""

from __future__ import annotations

import itertools
import logging
import zlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from sqlalchemy import Table, bindparam, delete, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.base import FhirResource
from gateway.envelope import Envelope, Unopened
from gateway.keys import Purpose, derive_key, legacy_key
from gateway.memo import RECENT_SECONDS, Recent
from store.db import Database, unavailable
from store.tables import CacheChunk, CacheSync

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Most resources in one encrypted chunk.
CHUNK_SIZE = 500
#: Most chunks written by one statement.
WRITE_BATCH = 16
#: zlib level of the chunks' JSON before encryption: FHIR JSON shrinks about eightfold
#: at the fastest level, so a huge record's sealed chunks fit in memory until written.
COMPRESSION_LEVEL = 1


_CHUNKS: Table = CacheChunk.__table__  # type: ignore[attr-defined]
_SYNC: Table = CacheSync.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class SyncState:
    """The cache's knowledge of one (person, source, type)."""

    synced_at: datetime
    full_synced_at: datetime


class CacheCorrupt(Exception):
    """A chunk did not decrypt or parse: it is treated as absent, never served."""


@dataclass(frozen=True, slots=True)
class StoredType:
    """What one snapshot holds of one (person, source, type)."""

    synced_at: datetime
    chunks: int


@dataclass(slots=True)
class Sealed:
    """One (person, source, type)'s resources, sealed: what :meth:`RecordCache.store`
    writes."""

    bodies: list[bytes]
    count: int
    #: The resources themselves, if the sealer was asked to keep them and they were few
    #: enough; else None.
    resources: list[FhirResource] | None
    #: Beside kept ``resources``, what was handed in with each (see
    #: :meth:`ChunkSealer.take`); else None.
    digests: list[bytes | None] | None = None


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
        return Sealed(self._bodies, self.count, self._kept, self._digests)


class CacheSnapshot:
    """One person's cached data as it was when the snapshot was opened, read a chunk at
    a time: what a stream over a large record reads twice (see
    :meth:`RecordCache.snapshot`)."""

    def __init__(
        self,
        cache: RecordCache,
        conn: AsyncConnection,
        patient_id: str,
        stored: dict[tuple[str, str], StoredType],
    ) -> None:
        self._cache = cache
        self._conn = conn
        self._patient_id = patient_id
        self._stored = stored

    def stored(self, source_id: str, resource_type: str) -> StoredType | None:
        return self._stored.get((source_id, resource_type))

    async def chunks(
        self, source_id: str, resource_type: str
    ) -> AsyncGenerator[list[FhirResource], None]:
        """The resources of one source and type, one chunk at a time, in stored order;
        raises :class:`CacheCorrupt` on a chunk that does not decrypt."""
        stored = self._stored.get((source_id, resource_type))
        for number in range(stored.chunks if stored else 0):
            key = {
                "patient_id": self._patient_id,
                "source_id": source_id,
                "resource_type": resource_type,
                "chunk": number,
            }
            try:
                body = await self._conn.scalar(self._cache.chunk_query, key)
            except SQLAlchemyError as exc:
                # Read outside the snapshot's own error handling (it is held open between
                # reads).
                raise unavailable(exc) from exc
            aad = self._cache._aad(self._patient_id, source_id, resource_type, number)
            if body is None:
                raise CacheCorrupt("a cache chunk is missing")
            yield self._cache._open(body, aad)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _batched(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(itertools.islice(rows, size)):
        yield batch


class RecordCache:
    """The cache of normalised data on a :class:`Database`."""

    def __init__(self, db: Database, data_key: str, retention: timedelta) -> None:
        self._db = db
        #: Each person's sync rows as lately read (see :meth:`states`).
        self._recent: Recent[str, list[tuple[str, str, SyncState]]] = Recent(RECENT_SECONDS)
        self._envelope = Envelope(
            derive_key(data_key, Purpose.RECORD_CACHE),
            legacy_key(data_key, Purpose.RECORD_CACHE),
        )
        self.retention = retention
        # Built once: constructing an upsert costs more than running it.
        chunk = db.upsert(_CHUNKS)
        self._put_chunk = chunk.on_conflict_do_update(
            index_elements=["patient_id", "source_id", "resource_type", "chunk"],
            set_={"body": chunk.excluded.body},
        )
        self.chunk_query = select(_CHUNKS.c.body).where(
            _CHUNKS.c.patient_id == bindparam("patient_id"),
            _CHUNKS.c.source_id == bindparam("source_id"),
            _CHUNKS.c.resource_type == bindparam("resource_type"),
            _CHUNKS.c.chunk == bindparam("chunk"),
        )
        sync = db.upsert(_SYNC)
        self._put_sync = sync.on_conflict_do_update(
            index_elements=["patient_id", "source_id", "resource_type"],
            set_={
                "synced_at": sync.excluded.synced_at,
                "full_synced_at": sync.excluded.full_synced_at,
                "chunks": sync.excluded.chunks,
            },
        )

    # -- encryption ----------------------------------------------------------------

    @staticmethod
    def _aad(patient_id: str, source_id: str, resource_type: str, chunk: int) -> bytes:
        return f"{patient_id}|{source_id}|{resource_type}|{chunk}".encode()

    def _seal(self, resources: Sequence[FhirResource], aad: bytes) -> bytes:
        return self._envelope.seal(zlib.compress(orjson.dumps(resources), COMPRESSION_LEVEL), aad)

    def _open(self, body: bytes, aad: bytes) -> list[FhirResource]:
        try:
            resources: Any = orjson.loads(zlib.decompress(self._envelope.open(body, aad)))
        except (Unopened, ValueError, zlib.error) as exc:
            raise CacheCorrupt("a cache chunk does not decrypt") from exc
        if not isinstance(resources, list):
            raise CacheCorrupt("a cache chunk is not a list")
        return resources

    def sealer(
        self,
        patient_id: str,
        source_id: str,
        resource_type: str,
        keep: KeepBudget | None = None,
    ) -> ChunkSealer:
        """Seals one (person, source, type)'s fresh resources as they arrive (for
        :meth:`store`), keeping them in memory too while ``keep`` allows."""
        return ChunkSealer(
            lambda number, part: self._seal(
                part, self._aad(patient_id, source_id, resource_type, number)
            ),
            keep,
        )

    # -- reads -----------------------------------------------------------------------

    async def states(
        self, patient_id: str, types: Iterable[str], now: datetime | None = None
    ) -> dict[str, dict[str, SyncState]]:
        """What is cached for ``patient_id``: source id -> type -> sync state.

        Entries older than the retention are left out (whether or not purged yet). Read
        at most every :data:`RECENT_SECONDS` per person (this process's own writes are
        seen at once; another's within that time).
        """
        oldest = (now or datetime.now(UTC)) - self.retention
        rows = self._recent.get(patient_id)
        if rows is None:
            query = select(
                _SYNC.c.source_id,
                _SYNC.c.resource_type,
                _SYNC.c.synced_at,
                _SYNC.c.full_synced_at,
            ).where(_SYNC.c.patient_id == patient_id)
            async with self._db.connect() as conn:
                rows = [
                    (source_id, resource_type, SyncState(_aware(synced), _aware(full)))
                    for source_id, resource_type, synced, full in await conn.execute(query)
                ]
            self._recent.put(patient_id, rows)
        wanted = set(types)
        found: dict[str, dict[str, SyncState]] = {}
        for source_id, resource_type, state in rows:
            if resource_type in wanted and state.full_synced_at >= oldest:
                found.setdefault(source_id, {})[resource_type] = state
        return found

    async def load(
        self, patient_id: str, source_ids: Iterable[str], types: Iterable[str]
    ) -> dict[str, dict[str, list[FhirResource]]]:
        """The cached resources: source id -> type -> resources (in stored order).

        A source with a chunk that does not decrypt is left out entirely: better no data
        than part of it.
        """
        wanted_sources, wanted_types = list(source_ids), list(types)
        if not wanted_sources or not wanted_types:
            return {}
        # Only the chunks the sync row counts: a longer earlier write may have left more.
        query = (
            select(_CHUNKS.c.source_id, _CHUNKS.c.resource_type, _CHUNKS.c.chunk, _CHUNKS.c.body)
            .join(
                _SYNC,
                (_SYNC.c.patient_id == _CHUNKS.c.patient_id)
                & (_SYNC.c.source_id == _CHUNKS.c.source_id)
                & (_SYNC.c.resource_type == _CHUNKS.c.resource_type),
            )
            .where(
                _CHUNKS.c.patient_id == patient_id,
                _CHUNKS.c.source_id.in_(wanted_sources),
                _CHUNKS.c.resource_type.in_(wanted_types),
                _CHUNKS.c.chunk < _SYNC.c.chunks,
            )
            .order_by(_CHUNKS.c.source_id, _CHUNKS.c.resource_type, _CHUNKS.c.chunk)
        )
        found: dict[str, dict[str, list[FhirResource]]] = {}
        broken: set[str] = set()
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        for source_id, resource_type, chunk, body in rows:
            try:
                part = self._open(body, self._aad(patient_id, source_id, resource_type, chunk))
            except CacheCorrupt:
                broken.add(source_id)
                continue
            found.setdefault(source_id, {}).setdefault(resource_type, []).extend(part)
        for source_id in broken:
            found.pop(source_id, None)
        return found

    @asynccontextmanager
    async def snapshot(self, patient_id: str) -> AsyncIterator[CacheSnapshot]:
        """What is cached for ``patient_id``, unchanged by refreshes while it is open."""
        query = select(
            _SYNC.c.source_id, _SYNC.c.resource_type, _SYNC.c.synced_at, _SYNC.c.chunks
        ).where(_SYNC.c.patient_id == patient_id)
        async with self._db.snapshot() as conn:
            stored = {
                (source_id, resource_type): StoredType(_aware(synced_at), chunks)
                for source_id, resource_type, synced_at, chunks in await conn.execute(query)
            }
            yield CacheSnapshot(self, conn, patient_id, stored)

    # -- writes ----------------------------------------------------------------------
    #
    # Every write of one (person, source) holds its write lock (see Database.write) from
    # before it reads the sync rows to commit: two refreshes of one person and source
    # never interleave their statements, and a refresh older than what is stored (asked
    # earlier, answered later) finds it out and leaves the newer data be.

    async def save(
        self,
        patient_id: str,
        source_id: str,
        by_type: Mapping[str, Sequence[FhirResource]],
        synced_at: datetime,
        *,
        full: bool,
    ) -> dict[str, list[FhirResource]]:
        """Store a refresh of ``by_type`` and return the data it amounts to per type.

        ``full``: the answer is everything the source holds for these types, replacing
        what was cached (returned as given). Otherwise it holds only what changed since
        the last sync, and is merged into the cached resources by id (a changed resource
        replaces its old version; new ones are added) and the merge returned.

        A type already cached from a later refresh (``synced_at`` after this one's) is
        left as it is: a full answer is still returned as given, changes are not merged
        and what is cached is returned.
        """
        if full:
            merged = {t: list(resources) for t, resources in by_type.items()}
            sealed = self._sealed(patient_id, source_id, merged)

            async def replace(conn: AsyncConnection) -> dict[str, list[FhirResource]]:
                await self._replace(conn, patient_id, source_id, sealed, synced_at)
                return merged

            return await self._locked(patient_id, source_id, replace)

        async def merge(conn: AsyncConnection) -> dict[str, list[FhirResource]]:
            return await self._merge_changes(conn, patient_id, source_id, by_type, synced_at)

        return await self._locked(patient_id, source_id, merge)

    async def store(
        self, patient_id: str, source_id: str, sealed: Mapping[str, Sealed], synced_at: datetime
    ) -> None:
        """Store a full refresh already sealed (see :meth:`sealer`), replacing what was
        cached for those types (except a type cached from a later refresh)."""

        async def replace(conn: AsyncConnection) -> None:
            await self._replace(conn, patient_id, source_id, sealed, synced_at)

        await self._locked(patient_id, source_id, replace)

    async def _locked(
        self,
        patient_id: str,
        source_id: str,
        work: Callable[[AsyncConnection], Awaitable[_T]],
    ) -> _T:
        """Run ``work`` as the one writer of (``patient_id``, ``source_id``)."""
        try:
            return await self._db.write(work, lock=f"record-cache|{patient_id}|{source_id}")
        finally:
            # After the write: a read of this process meanwhile may have kept the old rows.
            self._recent.discard(patient_id)

    def _sealed(
        self, patient_id: str, source_id: str, by_type: Mapping[str, Sequence[FhirResource]]
    ) -> dict[str, Sealed]:
        sealed = {}
        for resource_type, resources in by_type.items():
            sealer = self.sealer(patient_id, source_id, resource_type)
            sealer.take(list(resources))
            sealed[resource_type] = sealer.finish()
        return sealed

    async def _synced(
        self, conn: AsyncConnection, patient_id: str, source_id: str, types: Iterable[str]
    ) -> dict[str, SyncState]:
        """The sync states of one source's ``types`` (read under its write lock)."""
        rows = await conn.execute(
            select(_SYNC.c.resource_type, _SYNC.c.synced_at, _SYNC.c.full_synced_at).where(
                _SYNC.c.patient_id == patient_id,
                _SYNC.c.source_id == source_id,
                _SYNC.c.resource_type.in_(list(types)),
            )
        )
        return {t: SyncState(_aware(s), _aware(f)) for t, s, f in rows}

    async def _replace(
        self,
        conn: AsyncConnection,
        patient_id: str,
        source_id: str,
        sealed: Mapping[str, Sealed],
        synced_at: datetime,
    ) -> None:
        stored = await self._synced(conn, patient_id, source_id, sealed)
        current = {
            t: part
            for t, part in sealed.items()
            if t not in stored or stored[t].synced_at <= synced_at
        }
        full_synced = dict.fromkeys(current, synced_at)
        await self._write(conn, patient_id, source_id, current, synced_at, full_synced)

    async def _merge_changes(
        self,
        conn: AsyncConnection,
        patient_id: str,
        source_id: str,
        changes: Mapping[str, Sequence[FhirResource]],
        synced_at: datetime,
    ) -> dict[str, list[FhirResource]]:
        previous = await self._synced(conn, patient_id, source_id, changes)
        missing = set(changes) - set(previous)
        if missing:
            raise ValueError(f"no full sync to add changes to: {sorted(missing)}")
        rows = await conn.execute(
            select(_CHUNKS.c.resource_type, _CHUNKS.c.chunk, _CHUNKS.c.body)
            .where(
                _CHUNKS.c.patient_id == patient_id,
                _CHUNKS.c.source_id == source_id,
                _CHUNKS.c.resource_type.in_(list(changes)),
            )
            .order_by(_CHUNKS.c.resource_type, _CHUNKS.c.chunk)
        )
        current: dict[str, dict[str, FhirResource]] = {t: {} for t in changes}
        for resource_type, chunk, body in rows:
            aad = self._aad(patient_id, source_id, resource_type, chunk)
            for resource in self._open(body, aad):
                current[resource_type][str(resource.get("id"))] = resource
        newer = {t for t, state in previous.items() if state.synced_at > synced_at}
        for resource_type, changed in changes.items():
            if resource_type not in newer:
                for resource in changed:
                    current[resource_type][str(resource.get("id"))] = resource
        merged = {t: list(by_id.values()) for t, by_id in current.items()}
        written = {t: merged[t] for t in merged if t not in newer}
        full_synced = {t: previous[t].full_synced_at for t in written}
        sealed = self._sealed(patient_id, source_id, written)
        await self._write(conn, patient_id, source_id, sealed, synced_at, full_synced)
        return merged

    async def _write(
        self,
        conn: AsyncConnection,
        patient_id: str,
        source_id: str,
        sealed: Mapping[str, Sealed],
        synced_at: datetime,
        full_synced_at: Mapping[str, datetime],
    ) -> None:
        """Replace the chunks of every type in ``sealed``: three statements for a record
        of up to :data:`WRITE_BATCH` chunks, one more for each further batch. Rows are
        written in key order, as any other writer of them does."""
        if not sealed:
            return
        types = sorted(sealed)
        person = {"patient_id": patient_id, "source_id": source_id}
        await conn.execute(
            delete(_CHUNKS).where(
                _CHUNKS.c.patient_id == patient_id,
                _CHUNKS.c.source_id == source_id,
                _CHUNKS.c.resource_type.in_(types),
            )
        )
        rows = (
            {**person, "resource_type": resource_type, "chunk": number, "body": body}
            for resource_type in types
            for number, body in enumerate(sealed[resource_type].bodies)
        )
        # Upserts: a chunk row removed by another write meanwhile may be back.
        for batch in _batched(rows, WRITE_BATCH):
            await conn.execute(self._put_chunk, batch)
        await conn.execute(
            self._put_sync,
            [
                {
                    **person,
                    "resource_type": resource_type,
                    "synced_at": synced_at,
                    "full_synced_at": full_synced_at[resource_type],
                    "chunks": len(sealed[resource_type].bodies),
                }
                for resource_type in types
            ],
        )

    async def forget(self, patient_id: str, source_id: str | None = None) -> None:
        """Remove what is cached about ``patient_id`` (from one source, or from all)."""
        chunk_where = [_CHUNKS.c.patient_id == patient_id]
        sync_where = [_SYNC.c.patient_id == patient_id]
        if source_id is not None:
            chunk_where.append(_CHUNKS.c.source_id == source_id)
            sync_where.append(_SYNC.c.source_id == source_id)

        async def remove(conn: AsyncConnection) -> None:
            await conn.execute(delete(_CHUNKS).where(*chunk_where))
            await conn.execute(delete(_SYNC).where(*sync_where))

        if source_id is not None:
            await self._locked(patient_id, source_id, remove)
            return
        try:
            await self._db.write(remove)
        finally:
            self._recent.discard(patient_id)

    async def expire(self, patient_id: str, source_id: str) -> None:
        """Make the next read refresh from the source (the data stays for stale-if-error)."""
        epoch = datetime(1970, 1, 1, tzinfo=UTC)

        async def backdate(conn: AsyncConnection) -> None:
            await conn.execute(
                update(_SYNC)
                .where(_SYNC.c.patient_id == patient_id, _SYNC.c.source_id == source_id)
                .values(synced_at=epoch)
            )

        await self._locked(patient_id, source_id, backdate)

    async def purge(self, now: datetime | None = None) -> int:
        """Remove everything not refreshed in full within the retention; returns the number
        of (person, source, type) entries removed."""
        oldest = (now or datetime.now(UTC)) - self.retention
        expired = select(_SYNC.c.patient_id, _SYNC.c.source_id, _SYNC.c.resource_type).where(
            _SYNC.c.full_synced_at < oldest
        )
        key = tuple_(_CHUNKS.c.patient_id, _CHUNKS.c.source_id, _CHUNKS.c.resource_type)

        async def remove(conn: AsyncConnection) -> int:
            await conn.execute(delete(_CHUNKS).where(key.in_(expired)))
            removed = await conn.execute(delete(_SYNC).where(_SYNC.c.full_synced_at < oldest))
            return int(removed.rowcount)

        try:
            return await self._db.write(remove)
        finally:
            self._recent.clear()
