"""Subscriptions and their deliveries, kept in the database.

The notifier (:mod:`gateway.access.notifier`) turns the outbox of changes the cache wrote
(``subscription_event``) into deliveries, one per matching subscription, each numbered
in its subscription's ``events`` count, in one transaction that also removes the events:
a change is delivered once to each subscription that was there when it was taken. A
delivery due is taken by pushing its ``due_at`` past the attempt's time (a lease), so
two processes do not send it at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.subscriptions import ACTIVE, HANDSHAKE, HEARTBEAT, REQUESTED, TOPICS
from gateway.collect.changes import subscribed
from gateway.collect.notices import news_kinds
from gateway.envelope import Envelope, Unopened
from gateway.keys import Purpose, derive_key
from store.db import Database
from store.jobs import Subscription, SubscriptionDelivery, SubscriptionEvent
from store.tables import as_utc, table_of

_SUBS = table_of(Subscription)
_EVENTS = table_of(SubscriptionEvent)
_DELIVERIES = table_of(SubscriptionDelivery)
#: Most events taken from the outbox at once.
EVENT_BATCH = 500


@dataclass(frozen=True, slots=True)
class Due:
    """A delivery taken to be sent now, with its subscription."""

    delivery: SubscriptionDelivery
    subscription: Subscription


def new_id() -> str:
    return uuid.uuid4().hex


class Subscriptions:
    """The ``subscription`` rows and their deliveries."""

    def __init__(self, db: Database, data_key: str) -> None:
        self._db = db
        self._envelope = Envelope(derive_key(data_key, Purpose.SUBSCRIPTION_HEADERS))

    async def create(self, subscription: Subscription, headers: Sequence[str] = ()) -> None:
        """Store a new subscription (``requested``), its ``headers`` sealed, with its
        handshake due now."""
        if headers:
            plain = orjson.dumps(list(headers))
            subscription.headers = self._envelope.seal(plain, _aad(subscription.id))
        values = subscription.model_dump()

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(insert(_SUBS).values(**values))
            await conn.execute(
                insert(_DELIVERIES).values(
                    **_delivery(subscription.id, HANDSHAKE, subscription.created_at)
                )
            )

        await self._db.write(work)

    async def get(self, subscription_id: str) -> Subscription | None:
        async with self._db.connect() as conn:
            row = (await conn.execute(select(_SUBS).where(_SUBS.c.id == subscription_id))).first()
        return None if row is None else Subscription.model_validate(row._asdict())

    async def of_client(self, client_id: str, care_provider: str) -> list[Subscription]:
        query = (
            select(_SUBS)
            .where(_SUBS.c.client_id == client_id, _SUBS.c.care_provider_hsa_id == care_provider)
            .order_by(_SUBS.c.created_at, _SUBS.c.id)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Subscription.model_validate(r._asdict()) for r in rows]

    def headers(self, sub: Subscription) -> list[str]:
        """The header lines ``sub`` sends (none if they do not open: sealed under
        another key)."""
        if sub.headers is None:
            return []
        try:
            return [str(h) for h in orjson.loads(self._envelope.open(sub.headers, _aad(sub.id)))]
        except Unopened:
            return []

    async def wanted(self, patient_id: str) -> bool:
        """Whether a live subscription may be told of this patient's changes, or the
        person asked to be told of news (:mod:`gateway.collect.notices`)."""
        async with self._db.connect() as conn:
            return await subscribed(conn, patient_id) or bool(await news_kinds(conn, patient_id))

    async def delete(self, subscription_id: str) -> None:
        """Remove the subscription and what it had still to send."""

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                delete(_DELIVERIES).where(_DELIVERIES.c.subscription_id == subscription_id)
            )
            await conn.execute(delete(_SUBS).where(_SUBS.c.id == subscription_id))

        await self._db.write(work)

    async def idle(self) -> bool:
        """Whether there is nothing to do: no live subscription, no change waiting and no
        delivery waiting (one read, so that an idle gateway writes nothing each round)."""
        async with self._db.connect() as conn:
            for query in (
                select(_SUBS.c.id).where(_SUBS.c.status.in_([ACTIVE, REQUESTED])),
                select(_EVENTS.c.id),
                select(_DELIVERIES.c.id),
            ):
                if (await conn.execute(query.limit(1))).first() is not None:
                    return False
        return True

    async def fan_out(self, now: datetime) -> int:
        """Turn the outbox's events into deliveries to the active (or requested)
        subscriptions they match; how many events were taken. A delivery is numbered
        only when its read is allowed (:meth:`number`): what the integrator may not see
        counts for nothing it is told."""

        async def work(conn: AsyncConnection) -> int:
            events = (
                await conn.execute(
                    select(_EVENTS).order_by(_EVENTS.c.recorded_at, _EVENTS.c.id).limit(EVENT_BATCH)
                )
            ).all()
            if not events:
                return 0
            live = (
                await conn.execute(select(_SUBS).where(_SUBS.c.status.in_([ACTIVE, REQUESTED])))
            ).all()
            subs = [Subscription.model_validate(r._asdict()) for r in live]
            for event in events:
                for sub in subs:
                    if not _matches(sub, event.patient_id, event.resource_type):
                        continue
                    row = _delivery(sub.id, "event-notification", now)
                    row |= {
                        "patient_id": event.patient_id,
                        "resource_type": event.resource_type,
                        "resource_id": event.resource_id,
                    }
                    await conn.execute(insert(_DELIVERIES).values(**row))
            await conn.execute(delete(_EVENTS).where(_EVENTS.c.id.in_([e.id for e in events])))
            return len(events)

        return await self._db.write(work, lock="subscription-outbox")

    async def number(self, due: Due) -> Subscription:
        """Number an event whose read was allowed: the subscription's next event number,
        kept with the delivery so that a retry sends the same one. The subscription as it
        is now (its count including this event)."""
        sub_id, delivery_id = due.subscription.id, due.delivery.id

        async def work(conn: AsyncConnection) -> Subscription:
            row = (await conn.execute(select(_SUBS).where(_SUBS.c.id == sub_id))).first()
            if row is None:
                return due.subscription
            sub = Subscription.model_validate(row._asdict())
            if due.delivery.event_number is not None:
                return sub
            sub.events += 1
            await conn.execute(update(_SUBS).where(_SUBS.c.id == sub_id).values(events=sub.events))
            await conn.execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.id == delivery_id)
                .values(event_number=sub.events)
            )
            due.delivery.event_number = sub.events
            return sub

        return await self._db.write(work, lock=f"subscription-events:{sub_id}")

    async def heartbeats(self, now: datetime) -> None:
        """A heartbeat due for each active subscription that has one and has sent
        nothing for its period (and has none waiting)."""

        async def work(conn: AsyncConnection) -> None:
            rows = (
                await conn.execute(
                    select(_SUBS).where(
                        _SUBS.c.status == ACTIVE, _SUBS.c.heartbeat_seconds.is_not(None)
                    )
                )
            ).all()
            for row in rows:
                sub = Subscription.model_validate(row._asdict())
                last = sub.sent_at or sub.created_at
                assert sub.heartbeat_seconds is not None
                if as_utc(last) + timedelta(seconds=sub.heartbeat_seconds) > now:
                    continue
                waiting = await conn.execute(
                    select(_DELIVERIES.c.id).where(_DELIVERIES.c.subscription_id == sub.id).limit(1)
                )
                if waiting.first() is None:
                    await conn.execute(
                        insert(_DELIVERIES).values(**_delivery(sub.id, HEARTBEAT, now))
                    )

        await self._db.write(work, lock="subscription-outbox")

    async def take_due(self, now: datetime, lease: timedelta, limit: int) -> list[Due]:
        """The deliveries due now, taken for ``lease`` (their ``due_at`` moved past it)."""

        async def work(conn: AsyncConnection) -> list[Due]:
            rows = (
                await conn.execute(
                    select(_DELIVERIES)
                    .where(_DELIVERIES.c.due_at <= now)
                    .order_by(_DELIVERIES.c.due_at, _DELIVERIES.c.event_number)
                    .limit(limit)
                )
            ).all()
            deliveries = [SubscriptionDelivery.model_validate(r._asdict()) for r in rows]
            wanted = sorted({d.subscription_id for d in deliveries})
            subs = {
                r.id: Subscription.model_validate(r._asdict())
                for r in (await conn.execute(select(_SUBS).where(_SUBS.c.id.in_(wanted)))).all()
            }
            # A requested subscription gets its handshake and nothing else until it is
            # active; one gone or given up on gets nothing, its deliveries removed.
            dead = [
                d.id
                for d in deliveries
                if subs.get(d.subscription_id) is None
                or subs[d.subscription_id].status not in (ACTIVE, REQUESTED)
            ]
            kept = [d for d in deliveries if d.id not in set(dead)]
            taken = [
                Due(d, subs[d.subscription_id])
                for d in kept
                if subs[d.subscription_id].status == (REQUESTED if d.kind == HANDSHAKE else ACTIVE)
            ]
            if dead:
                await conn.execute(delete(_DELIVERIES).where(_DELIVERIES.c.id.in_(dead)))
            if kept:  # those waiting for a handshake too, so they hold no batch's place
                await conn.execute(
                    update(_DELIVERIES)
                    .where(_DELIVERIES.c.id.in_([d.id for d in kept]))
                    .values(due_at=now + lease)
                )
            return taken

        return await self._db.write(work, lock="subscription-deliveries")

    async def sent(self, due: Due, now: datetime) -> None:
        """The delivery reached the endpoint: removed; a handshake makes it ``active``."""
        activated = due.delivery.kind == HANDSHAKE

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(delete(_DELIVERIES).where(_DELIVERIES.c.id == due.delivery.id))
            values: dict[str, object] = {"sent_at": now}
            if activated:
                values |= {"status": ACTIVE, "error": None}
                # What waited for the handshake is due at once.
                await conn.execute(
                    update(_DELIVERIES)
                    .where(_DELIVERIES.c.subscription_id == due.subscription.id)
                    .values(due_at=now)
                )
            await conn.execute(
                update(_SUBS).where(_SUBS.c.id == due.subscription.id).values(**values)
            )

        await self._db.write(work)

    async def dropped(self, due: Due) -> None:
        """The delivery is not to be sent (consent refused, or nothing to tell)."""

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(delete(_DELIVERIES).where(_DELIVERIES.c.id == due.delivery.id))

        await self._db.write(work)

    async def failed(
        self, due: Due, error: str, retry_at: datetime | None, *, status: str | None = None
    ) -> None:
        """The delivery failed: tried again at ``retry_at``, or (None) given up and the
        subscription set to ``status``, its waiting deliveries removed."""

        async def work(conn: AsyncConnection) -> None:
            sub = due.subscription.id
            if retry_at is None:
                await conn.execute(delete(_DELIVERIES).where(_DELIVERIES.c.subscription_id == sub))
            else:
                await conn.execute(
                    update(_DELIVERIES)
                    .where(_DELIVERIES.c.id == due.delivery.id)
                    .values(attempts=due.delivery.attempts + 1, due_at=retry_at)
                )
            values: dict[str, object] = {"error": error}
            if status is not None:
                values["status"] = status
            await conn.execute(update(_SUBS).where(_SUBS.c.id == sub).values(**values))

        await self._db.write(work)


def _aad(subscription_id: str) -> bytes:
    return f"subscription:{subscription_id}/headers".encode()


def _matches(sub: Subscription, patient_id: str, resource_type: str) -> bool:
    topic = TOPICS.get(sub.topic)
    if topic is None or resource_type not in topic.types:
        return False
    return sub.patient_id is None or sub.patient_id == patient_id


def _delivery(subscription_id: str, kind: str, now: datetime) -> dict[str, object]:
    return {
        "id": new_id(),
        "subscription_id": subscription_id,
        "kind": kind,
        "attempts": 0,
        "due_at": now,
        "recorded_at": now,
    }
