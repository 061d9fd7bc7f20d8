"""Delivering writes to the systems that own them, one worker per process.

A write is delivered at once when it is made (the request waits up to
``write_wait_seconds`` for it), and otherwise by this worker: every
``write_poll_seconds`` it takes the queued writes that are due (under a lease, so no two
processes send one at once) and sends each to its owner. The owner's adapter gets the
resource with the write's own id as an identifier and ``If-None-Exist`` on it, so a
delivery repeated after a lost answer finds what the first one made. A failure worth
retrying (the owner down, a timeout, a broken answer) is tried again after
``write_retry_seconds`` doubled per attempt (at most ``write_retry_cap_seconds``);
after ``write_max_attempts`` the write is given up (``failed``). A refusal (a slot
taken) is final (``refused``). Once delivered, the person's cached data from that owner
is made stale, so the next read shows the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from adapters.base import FhirResource, supports_reads, supports_writes
from adapters.errors import SourceError, SourceRefused
from fhir_profiles.writes import WRITE_ID_SYSTEM
from gateway.access.outbox import DELIVERED, WriteOutbox
from gateway.access.persons import PersonIndex
from gateway.access.polling import poll
from gateway.collect.cache import RecordCache
from gateway.collect.slots import writer_of
from gateway.merge.written import ForeignReference, from_owner, to_owner
from gateway.settings import Settings
from gateway.sources import Source
from store.db import StoreUnavailable
from store.jobs import WriteRequest

log = logging.getLogger(__name__)

#: Most writes one worker sends at once.
SEND_BATCH = 20


class WriteServices(Protocol):
    """What delivering writes needs of the process's long-lived parts."""

    settings: Settings
    persons: PersonIndex
    cache: RecordCache

    @property
    def writable_sources(self) -> Sequence[Source]: ...


@dataclass(frozen=True, slots=True)
class Delivered:
    """A write as it ended (or stands): the row, and what the owner holds if known."""

    row: WriteRequest
    resource: FhirResource | None = None


class WriteWorker:
    """This process's write deliveries."""

    def __init__(
        self, services: WriteServices, outbox: WriteOutbox, stopping: asyncio.Event
    ) -> None:
        settings = services.settings
        self._services = services
        self.outbox = outbox
        self._stopping = stopping
        self._poll = settings.write_poll_seconds
        self._retry = settings.write_retry_seconds
        self._cap = settings.write_retry_cap_seconds
        self._attempts = settings.write_max_attempts
        #: A delivery takes at most a source's timeout; the lease outlasts it.
        self._lease = timedelta(seconds=120)
        self._woken = asyncio.Event()
        self._now_sending: set[asyncio.Task[Delivered]] = set()

    def wake(self) -> None:
        self._woken.set()

    async def run(self) -> None:
        """Work until stopping."""
        await poll(self.once, "write deliveries", self._poll, self._stopping, self._woken)

    async def aclose(self) -> None:
        """Wait for the deliveries requests started."""
        if self._now_sending:
            await asyncio.gather(*self._now_sending, return_exceptions=True)

    async def once(self) -> int:
        """One round: send the writes due; how many were sent."""
        now = datetime.now(UTC)
        if await self.outbox.idle(now):
            return 0
        due = await self.outbox.take(now, self._lease, SEND_BATCH)
        await asyncio.gather(*(self.deliver(row) for row in due))
        return len(due)

    @property
    def lease(self) -> timedelta:
        """How long a write taken for delivery is left to its taker."""
        return self._lease

    def start_now(self, row_id: str, *, held: bool = False) -> asyncio.Task[Delivered]:
        """Deliver the write ``row_id`` now, in a task of its own (it goes on when the
        request that made it stops waiting); ``held``: the request stored it under a
        lease of its own."""
        task = asyncio.create_task(self._now(row_id, held), name="write-delivery")
        self._now_sending.add(task)
        task.add_done_callback(self._now_sending.discard)
        return task

    async def _now(self, row_id: str, held: bool) -> Delivered:
        taken = await self.outbox.take(datetime.now(UTC), self._lease, 1, only=row_id, held=held)
        if taken:
            return await self.deliver(taken[0])
        row = await self.outbox.get(row_id)
        assert row is not None
        return Delivered(row)

    def _source(self, source_id: str) -> Source | None:
        return next((s for s in self._services.writable_sources if s.id == source_id), None)

    async def deliver(self, row: WriteRequest) -> Delivered:
        """Send one taken write to its owner; the write as it then stands."""
        now = datetime.now(UTC)
        source = self._source(row.source_id)
        adapter = writer_of(source) if source is not None else None
        if source is None or not supports_writes(adapter):
            await self.outbox.refused(row, now, 422, "the owning system does not take writes")
            return Delivered(await self._reread(row))
        try:
            person = await self._services.persons.resolve(row.patient_id)
            local = await source.adapter.find_patient(person) if person is not None else None
            if local is None or not isinstance(local.get("id"), str):
                await self.outbox.refused(row, now, 422, "the owning system has no such patient")
                return Delivered(await self._reread(row))
            local_patient = str(local["id"])
            resource = to_owner(self.outbox.resource(row), source.id, row.patient_id, local_patient)
            if row.interaction == "create":
                resource.pop("id", None)
                resource["identifier"] = [
                    *[
                        i
                        for i in resource.get("identifier", [])
                        if i.get("system") != WRITE_ID_SYSTEM
                    ],
                    {"system": WRITE_ID_SYSTEM, "value": row.id},
                ]
                condition = f"identifier={WRITE_ID_SYSTEM}|{row.id}"
                answered = await adapter.create(resource, condition)
            else:
                resource["id"] = row.target_id
                answered = await adapter.update(resource)
        except ForeignReference as exc:  # checked when it was asked: never sent
            await self.outbox.refused(row, now, 422, str(exc))
            return Delivered(await self._reread(row))
        except SourceRefused as exc:
            await self.outbox.refused(row, now, exc.status, str(exc))
            return Delivered(await self._reread(row))
        except SourceError as exc:
            await self._failed(row, now, f"the owning system could not be reached ({exc.reason})")
            return Delivered(await self._reread(row))
        except StoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - counted as a failed attempt, never a poison row
            log.warning("a write could not be delivered: %s", type(exc).__name__)
            await self._failed(row, now, "the write could not be delivered")
            return Delivered(await self._reread(row))
        served = from_owner(answered, source.id, row.patient_id, local_patient)
        await self.outbox.delivered(row, datetime.now(UTC), str(answered.get("id")))
        with contextlib.suppress(StoreUnavailable):
            await self._services.cache.expire(row.patient_id, source.id)
        return Delivered(await self._reread(row), served)

    async def _reread(self, row: WriteRequest) -> WriteRequest:
        return await self.outbox.get(row.id) or row

    async def _failed(self, row: WriteRequest, now: datetime, error: str) -> None:
        attempts = row.attempts + 1
        if attempts >= self._attempts:
            await self.outbox.failed(row, now, None, error)
            return
        wait = min(self._retry * 2 ** (attempts - 1), self._cap)
        await self.outbox.failed(row, now, now + timedelta(seconds=wait), error)


def is_delivered(row: WriteRequest) -> bool:
    return row.status == DELIVERED


async def current(services: WriteServices, row: WriteRequest) -> FhirResource | None:
    """What the owner holds now of a delivered write (its status as the owner changes
    it), as the gateway serves it; None if it cannot be read now."""
    source = next((s for s in services.writable_sources if s.id == row.source_id), None)
    if source is None or row.result_id is None:
        return None
    adapter = writer_of(source)
    person = await services.persons.resolve(row.patient_id)
    if person is None or not supports_reads(adapter):
        return None
    try:
        local = await source.adapter.find_patient(person)
        found = await adapter.read_many(row.resource_type, [row.result_id])
    except SourceError:
        return None
    if local is None or not found:
        return None
    return from_owner(found[0], source.id, row.patient_id, str(local.get("id")))
