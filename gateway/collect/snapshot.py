"""A snapshot of one person's cached data: what it held when the snapshot was opened, read
a chunk at a time on one connection held open with a read transaction (see
:meth:`gateway.collect.cache.RecordCache.snapshot`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.base import FhirResource
from gateway.collect.sealing import CacheCorrupt, ChunkCipher
from store.db import unavailable
from store.tables import CacheChunk

_CHUNKS: Table = CacheChunk.__table__  # type: ignore[attr-defined]
#: One chunk's body by its row's key.
_CHUNK_BODY = select(_CHUNKS.c.body).where(
    _CHUNKS.c.patient_id == bindparam("patient_id"),
    _CHUNKS.c.source_id == bindparam("source_id"),
    _CHUNKS.c.resource_type == bindparam("resource_type"),
    _CHUNKS.c.chunk == bindparam("chunk"),
)


@dataclass(frozen=True, slots=True)
class StoredType:
    """What one snapshot holds of one (person, source, type)."""

    synced_at: datetime
    chunks: int


class CacheSnapshot:
    """One person's cached data as it was when the snapshot was opened, read a chunk at
    a time: what a stream over a large record reads twice (see
    :meth:`~gateway.collect.cache.RecordCache.snapshot`)."""

    def __init__(
        self,
        cipher: ChunkCipher,
        conn: AsyncConnection,
        patient_id: str,
        stored: dict[tuple[str, str], StoredType],
    ) -> None:
        self._cipher = cipher
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
                body = await self._conn.scalar(_CHUNK_BODY, key)
            except SQLAlchemyError as exc:
                # Read outside the snapshot's own error handling (it is held open between
                # reads).
                raise unavailable(exc) from exc
            aad = self._cipher.aad(self._patient_id, source_id, resource_type, number)
            if body is None:
                raise CacheCorrupt("a cache chunk is missing")
            yield self._cipher.open(body, aad)
