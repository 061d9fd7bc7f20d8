"""The changes a refresh brings to a person's cached record, for subscriptions and for
the person's own notices.

Written by the cache (:mod:`gateway.collect.cache`) in the same transaction as the chunks
it replaces, into the ``subscription_event`` outbox: a change is recorded if and only if
the data that holds it is. Only types some topic announces
(:data:`fhir_profiles.subscriptions.TOPIC_TYPES`) are looked at, and only types cached
before (a person's first fetch is not news), and only for a person a live subscription
may be told of (one naming them, or one for every patient) or who asked to be told of
that kind of news themselves (:mod:`gateway.collect.notices`, written to the ``notice``
outbox in the same transaction): for anyone else a write costs two indexed queries
more. A full refresh tells of the resources whose
ids were not in the record before (the owner index says which were); a refresh of
changes only tells of every resource the source answers that is new or differs from
its cached version.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.base import FhirResource
from fhir_profiles.subscriptions import ACTIVE, REQUESTED, TOPIC_TYPES
from gateway.collect.notices import news_kinds, record_news
from gateway.collect.owners import OwnerIndex
from gateway.merge.dedup import record_keys
from store.jobs import Subscription, SubscriptionEvent
from store.tables import table_of

_EVENTS = table_of(SubscriptionEvent)
_SUBS = table_of(Subscription)


def _version(resource: FhirResource | None) -> tuple[str, str] | None:
    """Which version of a resource this is, as its source says (``meta``): the gateway's
    own marks on it (when it was fetched) do not make it another."""
    if resource is None:
        return None
    meta = resource.get("meta") or {}
    return str(meta.get("versionId")), str(meta.get("lastUpdated"))


async def subscribed(conn: AsyncConnection, patient_id: str) -> bool:
    """Whether a live subscription may be told of the person's changes: the one rule
    for recording a change and for asking the sources at a source's notification."""
    whose = or_(_SUBS.c.patient_id.is_(None), _SUBS.c.patient_id == patient_id)
    query = select(_SUBS.c.id).where(_SUBS.c.status.in_([ACTIVE, REQUESTED]), whose).limit(1)
    return (await conn.execute(query)).first() is not None


class ChangeLog:
    """Records the changes of cache writes as subscription events."""

    def __init__(self, owners: OwnerIndex) -> None:
        self._owners = owners

    async def replaced(
        self,
        conn: AsyncConnection,
        patient_id: str,
        source_id: str,
        ids: Mapping[str, tuple[Iterable[str], Iterable[str]]],
    ) -> None:
        """Before a full refresh replaces the types in ``ids`` (cached before; per type
        the ids and their owner-index keys, in the same order): record the ids new to
        the record."""
        types = sorted(t for t in ids if t in TOPIC_TYPES)
        if not types:
            return
        wanted = await _wanted(conn, patient_id)
        if not wanted.any:
            return
        held = await self._owners.held(conn, patient_id, source_id, types)
        fresh = {
            t: [i for i, ref in zip(*ids[t], strict=True) if ref not in held.get(t, set())]
            for t in types
        }
        await _record(conn, patient_id, fresh, wanted)

    async def changed(
        self,
        conn: AsyncConnection,
        patient_id: str,
        cached: Mapping[str, Mapping[str, FhirResource]],
        changes: Mapping[str, Sequence[FhirResource]],
        skipped: Collection[str],
    ) -> None:
        """Before a refresh of ``changes`` is merged into the ``cached`` resources (by
        type and id; the types in ``skipped`` are not merged): record each resource of a
        topic's type that is new or another version (``meta.versionId`` and
        ``lastUpdated``) than the cached one. A source asked for
        changes since a moment is asked from a little before it, so it answers some
        unchanged resources again: those are not news."""
        news = {
            t: [
                str(r.get("id"))
                for r in changes[t]
                if _version(cached.get(t, {}).get(str(r.get("id")))) != _version(r)
            ]
            for t in changes
            if t in TOPIC_TYPES and t not in skipped
        }
        news = {t: ids for t, ids in news.items() if ids}
        if news:
            wanted = await _wanted(conn, patient_id)
            await _record(conn, patient_id, news, wanted)


@dataclass(frozen=True, slots=True)
class _Wanted:
    """Who wants a person's changes: a live subscription, and the person (which kinds)."""

    subscribed: bool
    kinds: frozenset[str]

    @property
    def any(self) -> bool:
        return self.subscribed or bool(self.kinds)


async def _wanted(conn: AsyncConnection, patient_id: str) -> _Wanted:
    return _Wanted(await subscribed(conn, patient_id), await news_kinds(conn, patient_id))


async def _record(
    conn: AsyncConnection,
    patient_id: str,
    ids: Mapping[str, Sequence[str]],
    wanted: _Wanted,
) -> None:
    if wanted.kinds:
        await record_news(conn, patient_id, wanted.kinds, ids)
    if wanted.subscribed:
        now = datetime.now(UTC)
        rows = [
            {
                "id": uuid.uuid4().hex,
                "patient_id": patient_id,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "recorded_at": now,
            }
            for resource_type in sorted(ids)
            for resource_id in ids[resource_type]
        ]
        if rows:
            await conn.execute(insert(_EVENTS), rows)


def apply_changes(current: dict[str, FhirResource], changed: Sequence[FhirResource]) -> None:
    """Merge one source's changed resources into what it answered before (by id): a
    changed resource replaces the one of its id, and also any other that is the same
    record under an older id (:func:`~gateway.merge.dedup.record_keys`), so a source that
    gave its data new ids does not show each record twice."""
    holders: dict[Hashable, str] = {}
    for resource_id, resource in current.items():
        for key in record_keys(resource):
            holders.setdefault(key, resource_id)
    for resource in changed:
        resource_id = str(resource.get("id"))
        for key in record_keys(resource):
            older = holders.get(key)
            if older is not None and older != resource_id:
                current.pop(older, None)
            holders[key] = resource_id
        current[resource_id] = resource
