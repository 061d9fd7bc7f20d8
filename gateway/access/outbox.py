"""The writes waiting for the systems that own them, kept in the database
(``write_request``): the durable outbox the write worker delivers from.

A write is stored once per idempotency key (a keyed hash of who asked and the key they
gave), in a transaction under a lock named by the key, so a request repeated at once or
after a lost answer finds the first one. A queued write is taken for delivery by pushing
its ``due_at`` past the attempt (a lease, as the subscriptions' deliveries are), so two
processes never send it at once, and one a stopped process held is taken again when its
lease runs out. The resource is personal data: sealed with AES-GCM
(:mod:`gateway.envelope`) under its own key.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime, timedelta

import orjson
from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.base import FhirResource
from gateway.envelope import Envelope
from gateway.keys import Purpose, derive_key
from store.db import Database
from store.jobs import WriteRequest
from store.tables import as_utc, table_of

_WRITES = table_of(WriteRequest)
QUEUED, DELIVERED, REFUSED, FAILED = "queued", "delivered", "refused", "failed"


def new_id() -> str:
    return uuid.uuid4().hex


def request_digest(interaction: str, resource_type: str, target: str | None, body: object) -> str:
    """What names one request, to tell a key reused for another apart."""
    text = orjson.dumps([interaction, resource_type, target, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()


class WriteOutbox:
    """The ``write_request`` rows."""

    def __init__(self, db: Database, id_key: str, data_key: str) -> None:
        self._db = db
        self._key = hashlib.sha256(b"samlad write keys:" + id_key.encode()).digest()
        self._envelope = Envelope(derive_key(data_key, Purpose.WRITE_OUTBOX))

    def keyed(self, *parts: str) -> str:
        """A keyed hash of ``parts`` (who asked, and their idempotency key)."""
        return hmac.new(self._key, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()

    def seal(self, row_id: str, resource: FhirResource) -> bytes:
        return self._envelope.seal(orjson.dumps(resource), _aad(row_id))

    def resource(self, row: WriteRequest) -> FhirResource:
        """The resource ``row`` sends, opened."""
        opened: FhirResource = orjson.loads(self._envelope.open(row.body, _aad(row.id)))
        return opened

    async def submit(
        self, row: WriteRequest, *, renew_before: datetime | None = None
    ) -> tuple[WriteRequest, bool]:
        """Store ``row``, unless a write with its idempotency key exists: that one, and
        whether ``row`` was stored. With ``renew_before``, a key recorded before then has
        run out: the earlier write keeps its row (and status URL) under a key no request
        names again, and ``row`` is stored."""
        values = row.model_dump()

        async def work(conn: AsyncConnection) -> tuple[WriteRequest, bool]:
            found = (
                await conn.execute(
                    select(_WRITES).where(_WRITES.c.idempotency_key == row.idempotency_key)
                )
            ).first()
            if found is not None:
                earlier = WriteRequest.model_validate(found._asdict())
                if renew_before is None or as_utc(earlier.recorded_at) >= renew_before:
                    return earlier, False
                retired = self.keyed("run-out", earlier.id)
                await conn.execute(
                    update(_WRITES)
                    .where(_WRITES.c.id == earlier.id)
                    .values(idempotency_key=retired)
                )
            await conn.execute(insert(_WRITES).values(**values))
            return row, True

        return await self._db.write(work, lock=f"write-key:{row.idempotency_key}")

    async def get(self, write_id: str) -> WriteRequest | None:
        return await self._one(_WRITES.c.id == write_id)

    async def by_key(self, idempotency_key: str) -> WriteRequest | None:
        """The write stored under ``idempotency_key`` (as :meth:`keyed` makes it), if any."""
        return await self._one(_WRITES.c.idempotency_key == idempotency_key)

    async def _one(self, where: ColumnElement[bool]) -> WriteRequest | None:
        async with self._db.connect() as conn:
            found = (await conn.execute(select(_WRITES).where(where))).first()
        return None if found is None else WriteRequest.model_validate(found._asdict())

    async def unit_of_result(self, source_id: str, result_id: str) -> str | None:
        """The care unit a delivered write was routed to, by what its owner made of it."""
        query = select(_WRITES.c.care_unit_hsa_id).where(
            _WRITES.c.source_id == source_id,
            _WRITES.c.result_id == result_id,
            _WRITES.c.status == DELIVERED,
        )
        async with self._db.connect() as conn:
            found = (await conn.execute(query.limit(1))).first()
        return str(found[0]) if found is not None and found[0] else None

    async def idle(self, now: datetime) -> bool:
        """Whether no write is due (one read: an idle gateway writes nothing)."""
        query = select(_WRITES.c.id).where(_WRITES.c.status == QUEUED, _WRITES.c.due_at <= now)
        async with self._db.connect() as conn:
            return (await conn.execute(query.limit(1))).first() is None

    async def take(
        self,
        now: datetime,
        lease: timedelta,
        limit: int,
        only: str | None = None,
        *,
        held: bool = False,
    ) -> list[WriteRequest]:
        """The queued writes due now (or only the one ``only`` names), taken for
        ``lease``; with ``held``, ``only`` is taken though its lease runs (a new write is
        stored held by the request that made it, which delivers it first)."""

        async def work(conn: AsyncConnection) -> list[WriteRequest]:
            query = select(_WRITES).where(_WRITES.c.status == QUEUED)
            if not held:
                query = query.where(_WRITES.c.due_at <= now)
            if only is not None:
                query = query.where(_WRITES.c.id == only)
            rows = (await conn.execute(query.order_by(_WRITES.c.due_at).limit(limit))).all()
            taken = [WriteRequest.model_validate(r._asdict()) for r in rows]
            if taken:
                await conn.execute(
                    update(_WRITES)
                    .where(_WRITES.c.id.in_([w.id for w in taken]))
                    .values(due_at=now + lease)
                )
            return taken

        return await self._db.write(work, lock="write-outbox")

    async def _set(self, write_id: str, **values: object) -> None:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(update(_WRITES).where(_WRITES.c.id == write_id).values(**values))

        await self._db.write(work)

    async def delivered(self, row: WriteRequest, now: datetime, result_id: str) -> None:
        """The owner accepted the write and holds it as ``result_id`` (its own id)."""
        await self._set(
            row.id,
            status=DELIVERED,
            done_at=now,
            attempts=row.attempts + 1,
            answer_status=201 if row.interaction == "create" else 200,
            result_id=result_id,
            error=None,
        )

    async def refused(self, row: WriteRequest, now: datetime, status: int, error: str) -> None:
        """The owner refused the write for good (``status`` is what it is answered)."""
        await self._set(
            row.id,
            status=REFUSED,
            done_at=now,
            attempts=row.attempts + 1,
            answer_status=status,
            error=error[:200],
        )

    async def failed(
        self, row: WriteRequest, now: datetime, retry_at: datetime | None, error: str
    ) -> None:
        """The attempt failed: tried again at ``retry_at``, or (None) given up."""
        values: dict[str, object] = {"attempts": row.attempts + 1, "error": error[:200]}
        if retry_at is None:
            values |= {"status": FAILED, "done_at": now, "answer_status": 503}
        else:
            values["due_at"] = retry_at
        await self._set(row.id, **values)


def _aad(row_id: str) -> bytes:
    return f"write:{row_id}".encode()
