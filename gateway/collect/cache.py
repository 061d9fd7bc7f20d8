"""The cache of normalised data: each source's answer about each person, encrypted at rest.

What is kept is one source's normalised answer (:mod:`gateway.merge.record`) for one person and
one resource type (the source's own Patient is kept as type ``Patient``): data already
admitted, normalised and rewritten to gateway ids, so a cached read only merges. It is
split into chunks of at most :data:`CHUNK_SIZE` resources, so that a huge record can be
written as it arrives (:class:`~gateway.collect.sealing.ChunkSealer`) and read a chunk at a
time (:class:`~gateway.collect.snapshot.CacheSnapshot`).

* Every chunk is compressed (zlib) and encrypted with AES-GCM under a key derived from
  ``data_key``, the row's key as associated data (:mod:`gateway.collect.sealing`). People
  are known by their opaque id only.
* Each (person, source, type) has a sync row: when it was last refreshed from the source
  (``synced_at``) and when last in full (``full_synced_at``; a refresh by last update
  cannot see deletions, so a full one is made at a configured interval).
* Rows older than the retention are never served and are removed by :meth:`purge`.

Nothing here decides who may see what: consent is evaluated on every read, after the
cache, by :class:`gateway.access.reader.RecordReader`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import (
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

from sqlalchemy import Table, delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.base import FhirResource
from gateway.collect.changes import ChangeLog, apply_changes
from gateway.collect.owners import OwnerIndex
from gateway.collect.sealing import (
    CHUNK_SIZE,
    CacheCorrupt,
    ChunkCipher,
    ChunkSealer,
    KeepBudget,
    Sealed,
    close_all,
)
from gateway.collect.snapshot import CacheSnapshot, StoredType
from gateway.memo import RECENT_SECONDS, Recent
from store.db import Database
from store.tables import CacheChunk, CacheSync, as_utc

# What callers import from here, wherever it is defined.
__all__ = [
    "CHUNK_SIZE",
    "WRITE_BATCH",
    "WRITE_BATCH_BYTES",
    "CacheCorrupt",
    "CacheSnapshot",
    "ChunkSealer",
    "KeepBudget",
    "RecordCache",
    "Sealed",
    "StoredType",
    "SyncState",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Most chunks written by one statement, and most bytes of them: a large answer's chunks
#: are read back from their temporary file (:mod:`gateway.collect.spill`) a statement at
#: a time.
WRITE_BATCH = 16
WRITE_BATCH_BYTES = 512 * 1024


_CHUNKS: Table = CacheChunk.__table__  # type: ignore[attr-defined]
_SYNC: Table = CacheSync.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class SyncState:
    """The cache's knowledge of one (person, source, type)."""

    synced_at: datetime
    full_synced_at: datetime


def _batched(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """``rows`` (chunk rows) a statement's worth at a time."""
    batch: list[dict[str, Any]] = []
    held = 0
    for row in rows:
        batch.append(row)
        held += len(row["body"])
        if len(batch) == WRITE_BATCH or held >= WRITE_BATCH_BYTES:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


class RecordCache:
    """The cache of normalised data on a :class:`Database`."""

    def __init__(self, db: Database, data_key: str, retention: timedelta) -> None:
        self._db = db
        #: Each person's sync rows as lately read (see :meth:`states`).
        self._recent: Recent[str, list[tuple[str, str, SyncState]]] = Recent(RECENT_SECONDS)
        self._cipher = ChunkCipher(data_key)
        #: Whose record each cached resource is in, written with the chunks.
        self.owners = OwnerIndex(db, data_key)
        self._changes = ChangeLog(self.owners)
        self.retention = retention
        # Built once: constructing an upsert costs more than running it.
        chunk = db.upsert(_CHUNKS)
        self._put_chunk = chunk.on_conflict_do_update(
            index_elements=["patient_id", "source_id", "resource_type", "chunk"],
            set_={"body": chunk.excluded.body},
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
            lambda number, compressed: self._cipher.seal(
                compressed, self._cipher.aad(patient_id, source_id, resource_type, number)
            ),
            keep,
            ref=functools.partial(self.owners.ref, resource_type),
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
                    (source_id, resource_type, SyncState(as_utc(synced), as_utc(full)))
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
                aad = self._cipher.aad(patient_id, source_id, resource_type, chunk)
                part = self._cipher.open(body, aad)
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
                (source_id, resource_type): StoredType(as_utc(synced_at), chunks)
                for source_id, resource_type, synced_at, chunks in await conn.execute(query)
            }
            yield CacheSnapshot(self._cipher, conn, patient_id, stored)

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

        try:
            await self._locked(patient_id, source_id, replace)
        finally:
            close_all(sealed)

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
        return {t: SyncState(as_utc(s), as_utc(f)) for t, s, f in rows}

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
        known = {t: (part.ids, part.refs) for t, part in current.items() if t in stored}
        await self._changes.replaced(conn, patient_id, source_id, known)
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
            aad = self._cipher.aad(patient_id, source_id, resource_type, chunk)
            for resource in self._cipher.open(body, aad):
                current[resource_type][str(resource.get("id"))] = resource
        newer = {t for t, state in previous.items() if state.synced_at > synced_at}
        await self._changes.changed(conn, patient_id, current, changes, newer)
        for resource_type, changed in changes.items():
            if resource_type not in newer:
                apply_changes(current[resource_type], changed)
        merged = {t: list(by_id.values()) for t, by_id in current.items()}
        written = {t: merged[t] for t in merged if t not in newer}
        full_synced = {t: previous[t].full_synced_at for t in written}
        sealed = self._sealed(patient_id, source_id, written)
        try:
            await self._write(conn, patient_id, source_id, sealed, synced_at, full_synced)
        finally:
            close_all(sealed)
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
        of up to :data:`WRITE_BATCH` chunks (and :data:`WRITE_BATCH_BYTES`), one more for
        each further batch. Rows are written in key order, as any other writer of them
        does."""
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
        for batch in _batched(rows):
            await conn.execute(self._put_chunk, batch)
        refs = {t: sealed[t].refs.merged() for t in types}
        await self.owners.replace(conn, patient_id, source_id, refs)
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
            await self.owners.forget(conn, patient_id, source_id)

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
            await self.owners.forget_expired(conn, expired)
            removed = await conn.execute(delete(_SYNC).where(_SYNC.c.full_synced_at < oldest))
            return int(removed.rowcount)

        try:
            return await self._db.write(remove)
        finally:
            self._recent.clear()
