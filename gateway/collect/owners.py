"""The record owner index: whose cached record holds a resource, by its type and id.

A read by id (``GET /fhir/Observation/{id}``) names no person, but every decision is about
one. The cache (:mod:`gateway.collect.cache`) writes, in the same transaction as each
(person, source, type)'s chunks, one row per resource it holds: the person, the source, the
type and a keyed hash of ``{type}/{id}``. :meth:`OwnerIndex.owners` then names the people
whose record may hold the resource; the read decides on each and reads that record, so
a resource is served by id exactly as it would be in a search of its owner's record.

The hash is HMAC-SHA256 under a key derived from ``data_key``
(:data:`gateway.keys.Purpose.RECORD_OWNER`), cut to 128 bits: no id is kept in the clear.
Rows go with their chunks: replaced when the chunks are, removed when they are.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Select, Table, bindparam, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.keys import Purpose, derive_key
from store.db import Database
from store.tables import RecordOwner

_OWNERS: Table = RecordOwner.__table__  # type: ignore[attr-defined]

#: Most rows written by one statement.
_WRITE_BATCH = 1000

#: Most people a read by id tries (a resource is in one person's record; a Practitioner
#: or Organization may be in many).
MOST_OWNERS = 20


class OwnerIndex:
    """Writes and reads the ``record_owner`` table of a :class:`Database`."""

    def __init__(self, db: Database, data_key: str) -> None:
        self._db = db
        self._key = derive_key(data_key, Purpose.RECORD_OWNER)
        # Every write of one person and source's rows holds its write lock (see
        # RecordCache._write) and inserts only what it did not find there; a key met twice
        # in one answer (the same id twice) is kept once.
        self._put = db.upsert(_OWNERS).on_conflict_do_nothing()
        self._remove = delete(_OWNERS).where(
            _OWNERS.c.patient_id == bindparam("patient_id"),
            _OWNERS.c.source_id == bindparam("source_id"),
            _OWNERS.c.resource_type == bindparam("type"),
            _OWNERS.c.ref == bindparam("gone"),
        )

    def ref(self, resource_type: str, resource_id: str) -> str:
        """The keyed hash a resource is indexed under."""
        message = f"{resource_type}/{resource_id}".encode()
        # hmac.digest: the same value as hmac.new(...).hexdigest(), in a third of the time.
        return hmac.digest(self._key, message, hashlib.sha256).hex()[:32]

    async def replace(
        self,
        conn: AsyncConnection,
        patient_id: str,
        source_id: str,
        refs: Mapping[str, Iterable[str]],
    ) -> None:
        """Index exactly ``refs`` (per type, each made by :meth:`ref` beforehand, out of
        the transaction; in key order, so that rows go into the index's pages in order:
        20,000 took 0.5 s out of order on SQLite, 0.3 s in order) for one person and
        source, replacing what those types had: rows no longer there removed, new ones
        added. Run in the transaction that writes their chunks, under its write lock."""
        if not refs:
            return
        person = {"patient_id": patient_id, "source_id": source_id}
        # Only the difference is written: a refresh mostly finds the same resources.
        held = await self.held(conn, patient_id, source_id, sorted(refs))
        for resource_type in sorted(refs):
            gone = held.get(resource_type, set())
            # Rows made a batch at a time, as the keys are read: a large record's would be
            # MBs at once.
            batch: list[dict[str, str]] = []
            for ref in refs[resource_type]:
                if ref in gone:
                    gone.discard(ref)
                    continue
                batch.append({**person, "resource_type": resource_type, "ref": ref})
                if len(batch) == _WRITE_BATCH:
                    await conn.execute(self._put, batch)
                    batch = []
            if batch:
                await conn.execute(self._put, batch)
            if gone:
                await conn.execute(
                    self._remove,
                    [{**person, "type": resource_type, "gone": ref} for ref in sorted(gone)],
                )

    async def held(
        self, conn: AsyncConnection, patient_id: str, source_id: str, types: Sequence[str]
    ) -> dict[str, set[str]]:
        """The refs indexed now for one person, source and ``types``, by type (read in
        the transaction that is about to replace them)."""
        rows = await conn.execute(
            select(_OWNERS.c.resource_type, _OWNERS.c.ref).where(
                _OWNERS.c.patient_id == patient_id,
                _OWNERS.c.source_id == source_id,
                _OWNERS.c.resource_type.in_(list(types)),
            )
        )
        held: dict[str, set[str]] = {}
        for resource_type, ref in rows:
            held.setdefault(resource_type, set()).add(ref)
        return held

    async def forget(
        self, conn: AsyncConnection, patient_id: str, source_id: str | None = None
    ) -> None:
        """Remove one person's rows (from one source, or from all)."""
        where = [_OWNERS.c.patient_id == patient_id]
        if source_id is not None:
            where.append(_OWNERS.c.source_id == source_id)
        await conn.execute(delete(_OWNERS).where(*where))

    async def forget_expired(
        self, conn: AsyncConnection, expired: Select[tuple[str, str, str]]
    ) -> None:
        """Remove the rows of the (person, source, type)s ``expired`` selects."""
        key = tuple_(_OWNERS.c.patient_id, _OWNERS.c.source_id, _OWNERS.c.resource_type)
        await conn.execute(delete(_OWNERS).where(key.in_(expired)))

    async def owners(self, resource_type: str, resource_id: str) -> list[str]:
        """The unified patient ids whose cached record holds the resource (at most
        :data:`MOST_OWNERS`, in a stable order)."""
        ref = self.ref(resource_type, resource_id)
        query = (
            select(_OWNERS.c.patient_id)
            .where(_OWNERS.c.ref == ref, _OWNERS.c.resource_type == resource_type)
            .distinct()
            .order_by(_OWNERS.c.patient_id)
            .limit(MOST_OWNERS)
        )
        async with self._db.connect() as conn:
            return [row[0] for row in await conn.execute(query)]
