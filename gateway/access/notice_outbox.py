"""The person's notice settings, the ``notice`` outbox and the messages to send.

A person's e-mail address and webhook URL are sealed (AES-GCM under a key of their own
from ``data_key``), bound to the person. The worker (:mod:`gateway.access.notice_worker`)
batches a person's waiting notices of one kind into one message per channel once the
oldest has waited ``batch_seconds`` and it is not the person's quiet hours, removing them
in the same transaction; a message due is taken by pushing its ``due_at`` past the
attempt's time (a lease), so two processes do not send it at once. Every write looks
first with a read: an idle gateway takes no write lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.datetimes import STOCKHOLM
from gateway.envelope import Envelope, Unopened
from gateway.keys import Purpose, derive_key
from store.db import Database
from store.jobs import Notice, NoticeMessage, NoticeSetting
from store.tables import table_of

_SETTINGS = table_of(NoticeSetting)
_NOTICES = table_of(Notice)
_MESSAGES = table_of(NoticeMessage)
_LOCAL = ZoneInfo(STOCKHOLM)
EMAIL, WEBHOOK, SETTER = "email", "webhook", "setter"


@dataclass(frozen=True, slots=True)
class Preferences:
    """What a person asked to be told of, and where, in the clear."""

    kinds: tuple[str, ...]
    email: str | None = None
    webhook: str | None = None
    #: Quiet hours, local time: nothing is sent from ``quiet_start`` to ``quiet_end``.
    quiet_start: time | None = None
    quiet_end: time | None = None
    #: Who chose them, when not the person: a guardian's or a proxy's identifier (12
    #: digits; empty if it no longer opens, which stands for nobody).
    setter: str | None = None

    def quiet_until(self, moment: datetime) -> datetime | None:
        """When the quiet hours around ``moment`` end; None if it is not in them."""
        if self.quiet_start is None or self.quiet_end is None:
            return None
        local = moment.astimezone(_LOCAL)
        start, end, now = self.quiet_start, self.quiet_end, local.time()
        inside = start <= now < end if start <= end else (now >= start or now < end)
        if not inside or start == end:
            return None
        ends = datetime.combine(local.date(), end, tzinfo=_LOCAL)
        if ends <= local:
            ends = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=_LOCAL)
        return ends

    def channels(self) -> list[str]:
        return [c for c, v in ((EMAIL, self.email), (WEBHOOK, self.webhook)) if v]


def _minutes(value: time | None) -> int | None:
    return None if value is None else value.hour * 60 + value.minute


def _clock(minutes: int | None) -> time | None:
    return None if minutes is None else time(minutes // 60, minutes % 60)


class NoticeOutbox:
    """Settings, notices and messages in the database."""

    def __init__(self, db: Database, data_key: str) -> None:
        self._db = db
        self._envelope = Envelope(derive_key(data_key, Purpose.NOTICE_CONTACTS))

    def _seal(self, value: str | None, patient_id: str, what: str) -> bytes | None:
        if value is None:
            return None
        return self._envelope.seal(value.encode(), f"{what}:{patient_id}".encode())

    def _open(self, value: bytes | None, patient_id: str, what: str) -> str | None:
        if value is None:
            return None
        try:
            return self._envelope.open(value, f"{what}:{patient_id}".encode()).decode()
        except Unopened:
            return None

    async def preferences(self, patient_id: str) -> Preferences | None:
        """The person's settings, or None when they asked for nothing."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(select(_SETTINGS).where(_SETTINGS.c.patient_id == patient_id))
            ).first()
        if row is None:
            return None
        return Preferences(
            tuple(row.kinds),
            self._open(row.email, patient_id, EMAIL),
            self._open(row.webhook, patient_id, WEBHOOK),
            _clock(row.quiet_start),
            _clock(row.quiet_end),
            None if row.setter is None else self._open(row.setter, patient_id, SETTER) or "",
        )

    async def choose(self, patient_id: str, chosen: Preferences | None, now: datetime) -> None:
        """Replace the person's settings (None: opt out); their waiting notices and
        messages go with the old ones."""
        values = None
        if chosen is not None:
            values = {
                "patient_id": patient_id,
                "kinds": list(chosen.kinds),
                "email": self._seal(chosen.email, patient_id, EMAIL),
                "webhook": self._seal(chosen.webhook, patient_id, WEBHOOK),
                "quiet_start": _minutes(chosen.quiet_start),
                "quiet_end": _minutes(chosen.quiet_end),
                "updated_at": now,
                "setter": self._seal(chosen.setter, patient_id, SETTER),
            }

        async def work(conn: AsyncConnection) -> None:
            for table in (_SETTINGS, _NOTICES, _MESSAGES):
                await conn.execute(delete(table).where(table.c.patient_id == patient_id))
            if values is not None:
                await conn.execute(insert(_SETTINGS).values(**values))

        await self._db.write(work, lock=f"notice-settings:{patient_id}")

    async def idle(self) -> bool:
        """Whether no notice and no message waits (one read)."""
        async with self._db.connect() as conn:
            for table in (_NOTICES, _MESSAGES):
                if (await conn.execute(select(table.c.id).limit(1))).first() is not None:
                    return False
        return True

    async def refs(self, patient_id: str, kind: str) -> list[str]:
        """What the person's waiting notices of ``kind`` are about (``Type/id``, or who
        read), oldest first."""
        query = (
            select(_NOTICES.c.ref)
            .where(_NOTICES.c.patient_id == patient_id, _NOTICES.c.kind == kind)
            .order_by(_NOTICES.c.recorded_at, _NOTICES.c.id)
        )
        async with self._db.connect() as conn:
            return [r.ref for r in await conn.execute(query)]

    async def ready(self, before: datetime) -> list[tuple[str, str]]:
        """(person, kind) of the notices whose oldest was recorded before ``before``."""
        query = (
            select(_NOTICES.c.patient_id, _NOTICES.c.kind)
            .group_by(_NOTICES.c.patient_id, _NOTICES.c.kind)
            .having(func.min(_NOTICES.c.recorded_at) <= before)
            .order_by(_NOTICES.c.patient_id, _NOTICES.c.kind)
            .limit(500)
        )
        async with self._db.connect() as conn:
            return [(r.patient_id, r.kind) for r in await conn.execute(query)]

    async def batch(
        self, patient_id: str, kind: str, channels: Sequence[str], now: datetime
    ) -> int:
        """Turn the person's waiting notices of ``kind`` into one message per channel
        (none if no channel), removing them; how many notices were taken."""

        async def work(conn: AsyncConnection) -> int:
            whose = (_NOTICES.c.patient_id == patient_id, _NOTICES.c.kind == kind)
            ids = [r.id for r in await conn.execute(select(_NOTICES.c.id).where(*whose))]
            if not ids:
                return 0
            for channel in channels:
                await conn.execute(
                    insert(_MESSAGES).values(
                        id=uuid.uuid4().hex,
                        patient_id=patient_id,
                        kind=kind,
                        channel=channel,
                        count=len(ids),
                        attempts=0,
                        due_at=now,
                        recorded_at=now,
                    )
                )
            await conn.execute(delete(_NOTICES).where(_NOTICES.c.id.in_(ids)))
            return len(ids)

        return await self._db.write(work, lock=f"notice-settings:{patient_id}")

    async def take_due(self, now: datetime, lease: timedelta, limit: int) -> list[NoticeMessage]:
        """The messages due now (at most ``limit``), each leased until ``now + lease``."""
        query = select(_MESSAGES.c.id).where(_MESSAGES.c.due_at <= now).limit(limit)
        async with self._db.connect() as conn:
            if (await conn.execute(query.limit(1))).first() is None:
                return []

        async def work(conn: AsyncConnection) -> list[NoticeMessage]:
            ids = [r.id for r in await conn.execute(query)]
            if not ids:
                return []
            rows = (await conn.execute(select(_MESSAGES).where(_MESSAGES.c.id.in_(ids)))).all()
            await conn.execute(
                update(_MESSAGES).where(_MESSAGES.c.id.in_(ids)).values(due_at=now + lease)
            )
            return [NoticeMessage.model_validate(r._asdict()) for r in rows]

        return await self._db.write(work, lock="notice-messages")

    async def sent(self, message: NoticeMessage) -> None:
        """The message reached its channel (or is given up): it is removed."""

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(delete(_MESSAGES).where(_MESSAGES.c.id == message.id))

        await self._db.write(work, lock="notice-messages")

    async def later(self, message: NoticeMessage, due_at: datetime, *, attempt: bool) -> None:
        """Send the message at ``due_at`` (after a failed attempt, counted, or in quiet
        hours, not)."""
        attempts = message.attempts + (1 if attempt else 0)

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                update(_MESSAGES)
                .where(_MESSAGES.c.id == message.id)
                .values(due_at=due_at, attempts=attempts)
            )

        await self._db.write(work, lock="notice-messages")
