"""Delivering subscriptions' notifications in the background, one worker per process.

Every ``subscription_poll_seconds`` (or at once when woken) the worker turns the outbox of
changes into deliveries (:meth:`Subscriptions.fan_out`), makes the heartbeats due, and
sends what is due. A requested subscription's handshake is sent first; when it reaches the
endpoint the subscription is ``active``. An event is decided on when it is sent: the
resource is read as the integrator through the :class:`~gateway.access.reader.RecordReader`
(logged as a ``notify`` in the patient's access log); refused (consent withdrawn, scopes)
or gone, nothing is sent and the delivery is dropped. A failed send (no answer, or not
2xx) is tried again after ``subscription_retry_seconds`` doubled per attempt; after
``subscription_max_attempts`` the subscription is set to ``error`` and sends no more.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from adapters.base import FhirResource
from consent.principals import Integrator
from fhir_profiles.subscriptions import ERROR, EVENT, TOPIC_TYPES
from gateway.access.polling import poll
from gateway.access.reader import RecordReader, RecordServices
from gateway.access.subscriptions import Due, Subscriptions
from gateway.answer.notifications import notification_bundle
from gateway.errors import Forbidden, GatewayError, NotFound
from store.db import StoreUnavailable

log = logging.getLogger(__name__)

#: Most deliveries sent at once by one worker.
SEND_BATCH = 20


class Notifier:
    """This process's delivery worker."""

    def __init__(
        self,
        services: RecordServices,
        subscriptions: Subscriptions,
        client: httpx.AsyncClient,
        stopping: asyncio.Event,
    ) -> None:
        settings = services.settings
        self._services = services
        self.subscriptions = subscriptions
        self._client = client
        self._stopping = stopping
        self._poll = settings.subscription_poll_seconds
        self._retry = settings.subscription_retry_seconds
        self._attempts = settings.subscription_max_attempts
        self._base = settings.fhir_base_url
        self._woken = asyncio.Event()
        self._refreshes: set[asyncio.Task[None]] = set()
        #: A send takes at most its timeout; the lease outlasts it.
        self._lease = timedelta(seconds=120)

    async def source_news(self, patient_id: str) -> None:
        """A source says it has new data for the patient: if a subscription (or the
        person) may be told of it, ask the sources now (in the background) rather than
        at the next read, so that what changed reaches the outbox. Nothing is read for
        anyone here: the data only goes to the cache, and each notification is decided
        on when it is sent."""
        if not await self.subscriptions.wanted(patient_id):
            return
        task = asyncio.create_task(self._refresh(patient_id), name="subscription-refresh")
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def _refresh(self, patient_id: str) -> None:
        try:
            person = await self._services.persons.resolve(patient_id)
            if person is not None:
                await self._services.collector.collect(
                    person, patient_id, sorted(TOPIC_TYPES), load=False
                )
        except (GatewayError, StoreUnavailable):
            log.warning("a source's news could not be fetched; the next read asks again")
        self.wake()

    async def aclose(self) -> None:
        """Wait for the refreshes under way."""
        if self._refreshes:
            await asyncio.gather(*self._refreshes, return_exceptions=True)

    def wake(self) -> None:
        """Look for work now rather than at the next poll."""
        self._woken.set()

    async def run(self) -> None:
        """Work until stopping."""
        await poll(self.once, "subscription deliveries", self._poll, self._stopping, self._woken)

    async def once(self) -> int:
        """One round: fan out, heartbeats, send what is due; how many were sent at."""
        if await self.subscriptions.idle():
            return 0
        now = datetime.now(UTC)
        await self.subscriptions.fan_out(now)
        await self.subscriptions.heartbeats(now)
        due = await self.subscriptions.take_due(now, self._lease, SEND_BATCH)
        if due:
            await asyncio.gather(*(self._deliver(d) for d in due))
        return len(due)

    async def _deliver(self, due: Due) -> None:
        sub, delivery = due.subscription, due.delivery
        now = datetime.now(UTC)
        resource: FhirResource | None = None
        event = None
        if delivery.kind == EVENT:
            assert delivery.resource_type is not None
            assert delivery.resource_id is not None
            focus = f"{delivery.resource_type}/{delivery.resource_id}"
            try:
                resource = await self._read(due)
            except (Forbidden, NotFound):
                await self.subscriptions.dropped(due)
                return
            except GatewayError:
                await self._failed(due, "the resource could not be read; will try again")
                return
            sub = await self.subscriptions.number(due)
            event = (delivery.event_number or 0, as_aware(delivery.recorded_at), focus)
        bundle = notification_bundle(
            self._base, sub, delivery.kind, now, event=event, resource=resource
        )
        headers = {"Content-Type": "application/fhir+json"}
        for line in self.subscriptions.headers(sub):
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
        try:
            answer = await self._client.post(
                sub.endpoint,
                content=orjson.dumps(bundle),
                headers=headers,
                timeout=sub.timeout_seconds,
            )
        # httpx's own errors, and what a malformed address makes its transport raise
        # (seen: an OverflowError in an ExceptionGroup): a failed delivery, never a crash.
        except (httpx.HTTPError, OSError, ValueError, OverflowError, ExceptionGroup):
            await self._failed(due, "the endpoint could not be reached")
            return
        if not 200 <= answer.status_code < 300:
            await self._failed(due, f"the endpoint answered {answer.status_code}")
            return
        await self.subscriptions.sent(due, datetime.now(UTC))

    async def _read(self, due: Due) -> FhirResource:
        """The event's resource, read now as the subscription's integrator (decided and
        logged as a ``notify``)."""
        sub, delivery = due.subscription, due.delivery
        assert delivery.resource_type is not None
        assert delivery.resource_id is not None
        principal = Integrator(sub.client_id, sub.care_provider_hsa_id, frozenset(sub.scopes))
        reader = RecordReader(principal, self._services)
        return await reader.read(delivery.resource_type, delivery.resource_id, action="notify")

    async def _failed(self, due: Due, error: str) -> None:
        attempts = due.delivery.attempts + 1
        if attempts >= self._attempts:
            await self.subscriptions.failed(due, error, None, status=ERROR)
            return
        wait = self._retry * 2 ** (attempts - 1)
        retry_at = datetime.now(UTC) + timedelta(seconds=wait)
        await self.subscriptions.failed(due, error, retry_at)


def as_aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
