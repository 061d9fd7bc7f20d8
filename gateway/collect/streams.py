"""A streamed answer's reads of the cache: snapshots of a person's cached data, at most
``max_streams`` open at once in this process, read a chunk at a time (from memory where
this process has decoded that very version).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager

from adapters.base import FhirResource
from gateway.collect.cache import CHUNK_SIZE, CacheSnapshot, RecordCache
from gateway.collect.deadline import request_arrival
from gateway.collect.decoded import DecodedMemory
from gateway.collect.turns import Turns
from gateway.errors import ServiceUnavailable


class Streams:
    """The snapshots open in this process, and what they read."""

    def __init__(self, cache: RecordCache, decoded: DecodedMemory, max_streams: int) -> None:
        self._cache = cache
        self._decoded = decoded
        #: Turns at reading the cache: held for as long as the answer takes to send.
        self.turns = Turns(max_streams, hold=None)

    @asynccontextmanager
    async def snapshot(self, patient_id: str, deadline: float) -> AsyncIterator[CacheSnapshot]:
        """The person's cached data, unchanged while open (see :meth:`chunks`).

        Each open snapshot holds a database connection and a read transaction, for as
        long as its answer takes to send: at most ``max_streams`` are open at once in this
        process, so they can never take every connection the other reads need; they are
        handed out oldest request first (:class:`~gateway.collect.turns.Turns`). A read
        that cannot have one within the request ``deadline``, counted from its arrival, is
        refused (503): at once when the wait foreseen is longer than that. A read outside
        an HTTP request waits as long as it takes.
        """
        arrival = request_arrival()
        # A read nobody waits on (a Bulk export's) waits as long as it takes.
        started = arrival.arrived if arrival is not None else time.monotonic()
        patience = math.inf if arrival is None else deadline - (time.monotonic() - started)
        async with self.turns.turn(started, patience) as turn:
            if turn is None:
                raise ServiceUnavailable(
                    "too many large answers are being sent at once; try again shortly"
                )
            async with self._cache.snapshot(patient_id) as snapshot:
                yield snapshot

    async def chunks(
        self, snapshot: CacheSnapshot, patient_id: str, source_id: str, resource_type: str
    ) -> AsyncGenerator[tuple[list[FhirResource], list[bytes | None] | None], None]:
        """One source's cached resources of one type, a chunk at a time, each with the
        resources' duplicate digests where known (:func:`gateway.merge.dedup.duplicate_digest`,
        made as their pages were normalised): from memory when this process has decoded
        that very version, else from ``snapshot`` (and then remembered, when small enough
        and read to the end)."""
        stored = snapshot.stored(source_id, resource_type)
        if stored is None:
            return
        remembered = self._decoded.get(patient_id, source_id, resource_type, stored.synced_at)
        if remembered is not None:
            yield remembered.resources, remembered.digests
            return
        small = stored.chunks * CHUNK_SIZE <= self._decoded.budget
        decoded: list[FhirResource] = []
        async with aclosing(snapshot.chunks(source_id, resource_type)) as parts:
            async for part in parts:
                if small:
                    decoded.extend(part)
                yield part, None
        if small:
            self._decoded.remember(patient_id, source_id, resource_type, stored.synced_at, decoded)
