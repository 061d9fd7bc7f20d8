"""Telling people of news and of reads of their record, in the background, one worker
per process, never on a request's path.

Every ``poll_seconds`` the worker looks (one read) whether a notice or a message waits;
only then does it write. A person's notices of one kind become one message per channel
once the oldest has waited ``batch_seconds`` and it is not their quiet hours
(:class:`~gateway.access.notice_outbox.NoticeOutbox`). A message due is sent: by e-mail,
or to the person's webhook (:mod:`gateway.access.notice_channels`). Only what the one
who chose the notices may still be told becomes a message, decided at batching and again
before sending (:mod:`gateway.access.notice_standing`). A failed one is tried
again after ``retry_seconds`` doubled per attempt, and given up after ``max_attempts``; one
due in quiet hours waits for their end. The clock is injected (``clock``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gateway.access.notice_channels import Channels, DeliveryFailed, message_for
from gateway.access.notice_outbox import EMAIL, WEBHOOK, NoticeOutbox, Preferences
from gateway.access.notice_standing import NoticeStanding
from gateway.access.polling import poll
from gateway.collect.notices import ACCESS
from gateway.errors import GatewayError
from gateway.notice_config import NoticeConfig
from store.jobs import NoticeMessage

log = logging.getLogger(__name__)

#: Most messages sent at once by one worker.
SEND_BATCH = 20


def utc_now() -> datetime:
    return datetime.now(UTC)


class NoticeWorker:
    """This process's notice worker."""

    def __init__(
        self,
        outbox: NoticeOutbox,
        channels: Channels,
        standing: NoticeStanding,
        config: NoticeConfig,
        link: str,
        stopping: asyncio.Event,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.outbox = outbox
        self.channels = channels
        self._standing = standing
        self._config = config
        self._link = link
        self._stopping = stopping
        self.clock = clock
        #: A send takes at most its timeout; the lease outlasts it.
        self._lease = timedelta(seconds=max(120.0, 2 * config.smtp_timeout_seconds))

    async def run(self) -> None:
        """Work until stopping."""
        await poll(self.once, "notices", self._config.poll_seconds, self._stopping)

    def channels_of(self, preferences: Preferences) -> list[str]:
        """The channels a message goes to (e-mail only with a mail server)."""
        return [c for c in preferences.channels() if c != EMAIL or self.channels.email]

    async def once(self) -> int:
        """One round: batch what has waited long enough, send what is due; how many
        messages were sent at."""
        if await self.outbox.idle():
            return 0
        now = self.clock()
        window = timedelta(seconds=self._config.batch_seconds)
        for patient_id, kind in await self.outbox.ready(now - window):
            preferences = await self.outbox.preferences(patient_id)
            channels: list[str] = []
            if preferences is not None:
                if preferences.quiet_until(now) is not None:
                    continue
                try:
                    if await self._tells(patient_id, kind, preferences):
                        channels = self.channels_of(preferences)
                except GatewayError:
                    log.warning("news could not be decided on; tried again next round")
                    continue
            await self.outbox.batch(patient_id, kind, channels, now)
        due = await self.outbox.take_due(now, self._lease, SEND_BATCH)
        if due:
            await asyncio.gather(*(self._send(message, now) for message in due))
        return len(due)

    async def _tells(self, patient_id: str, kind: str, preferences: Preferences) -> bool:
        """Whether the one who chose ``preferences`` is to be told of the person's
        waiting notices of ``kind``: they still stand for the person, and (news) some of
        it is what they could read online now."""
        if not await self._standing.stands(patient_id, preferences):
            return False
        if kind == ACCESS:
            return True
        refs = await self.outbox.refs(patient_id, kind)
        return await self._standing.any_shown(patient_id, preferences, refs)

    async def _send(self, message: NoticeMessage, now: datetime) -> None:
        preferences = await self.outbox.preferences(message.patient_id)
        address = None
        if preferences is not None and message.channel in self.channels_of(preferences):
            address = preferences.email if message.channel == EMAIL else preferences.webhook
        if preferences is None or address is None:
            await self.outbox.sent(message)  # the person no longer wants it there
            return
        if not await self._standing.stands(message.patient_id, preferences):
            await self.outbox.sent(message)  # the one told no longer stands for them
            return
        quiet = preferences.quiet_until(now)
        if quiet is not None:
            await self.outbox.later(message, quiet.astimezone(UTC), attempt=False)
            return
        text = message_for(message.kind, self._link)
        try:
            if message.channel == WEBHOOK:
                await self.channels.send_webhook(address, text)
            else:
                await self.channels.send_email(address, text)
        except DeliveryFailed as exc:
            await self._failed(message, now, str(exc))
            return
        await self.outbox.sent(message)

    async def _failed(self, message: NoticeMessage, now: datetime, error: str) -> None:
        attempts = message.attempts + 1
        if attempts >= self._config.max_attempts:
            log.warning("a notice was given up after %d attempts: %s", attempts, error)
            await self.outbox.sent(message)
            return
        wait = self._config.retry_seconds * 2 ** (attempts - 1)
        await self.outbox.later(message, now + timedelta(seconds=wait), attempt=True)
