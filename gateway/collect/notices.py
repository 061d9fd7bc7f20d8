"""What a person asked to be told of, written to the ``notice`` outbox where it happens.

News (a new or changed lab result, note or appointment) is recorded by the cache's change
detection (:mod:`gateway.collect.changes`) in the transaction that writes the chunks; an
access by anyone but the person (care staff, a system client, a guardian or a proxy) in
the transaction that appends its access-log entry (:func:`access_notices`, from what the
person asked for as read with their standing on that request: no statement more for
anyone who asked for nothing). Nothing is recorded for a person without a
``notice_setting`` that asks for the kind, except emergency access, recorded for everyone
with a channel. One notice per kind and ``ref`` waits at a time: the rest are the same
news. Nothing in a notice is health data: a kind, an opaque id and a resource or reader
reference, which never reach a message.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Executable, select
from sqlalchemy.ext.asyncio import AsyncConnection

from consent.entries import AuditEntryCreate
from fhir_profiles.subscriptions import TOPICS
from store.db import Database, upsert_into
from store.jobs import Notice, NoticeSetting
from store.tables import table_of

_NOTICES = table_of(Notice)
_SETTINGS = table_of(NoticeSetting)

#: The kind of news each type is, named after its subscription topic.
NEWS_KINDS: Mapping[str, str] = {
    t: url.rsplit("/", 1)[1] for url, topic in TOPICS.items() for t in topic.types
}
#: Someone other than the person read (or exported, or was sent) their data.
ACCESS = "access"
#: Every kind a person may ask for, in the order they are shown.
KINDS = (*sorted(set(NEWS_KINDS.values())), ACCESS)
#: Access-log actions that change choices rather than read data: nobody is told of them.
_NOT_READS = ("consent-", "block-", "seal-", "proxy-", "notice-", "own-data-")


async def news_kinds(conn: AsyncConnection, patient_id: str) -> frozenset[str]:
    """The kinds of news the person asked to be told of (one indexed read)."""
    row = (
        await conn.execute(select(_SETTINGS.c.kinds).where(_SETTINGS.c.patient_id == patient_id))
    ).first()
    return frozenset() if row is None else frozenset(row.kinds) - {ACCESS}


async def record_news(
    conn: AsyncConnection,
    patient_id: str,
    kinds: Collection[str],
    ids: Mapping[str, Sequence[str]],
) -> None:
    """Notices of the new ``ids`` (by type) whose kind is among ``kinds``."""
    refs = [
        (NEWS_KINDS[t], f"{t}/{i}")
        for t in sorted(ids)
        if NEWS_KINDS.get(t) in kinds
        for i in ids[t]
    ]
    await _insert(conn, [(patient_id, kind, ref) for kind, ref in refs])


def is_told_access(entry: AuditEntryCreate) -> bool:
    """A read by someone other than the person: care staff, an integrator, a guardian, or
    a citizen acting for the person (a proxy is logged as the citizen they are, by their
    own opaque id, which is not the person's)."""
    return (
        (entry.actor_kind != "citizen" or entry.actor_id != entry.patient_id)
        and entry.outcome == "allowed"
        and not any(part in entry.action for part in _NOT_READS)
    )


def access_notices(
    db: Database, entry: AuditEntryCreate, kinds: Collection[str], channel: bool
) -> list[Executable]:
    """The notice of the access ``entry`` logs (one :func:`is_told_access` holds for), to
    be written with it, for a person who asked to be told of accesses (``kinds``, read
    with their standing) and gave a ``channel``; emergency access is told to everyone with
    a channel. Empty when nothing is told."""
    if not channel or not (ACCESS in kinds or entry.emergency):
        return []
    ref = f"{entry.actor_kind}:{entry.actor_id}"
    values = _values([(entry.patient_id, ACCESS, ref)])
    return [db.upsert(_NOTICES).values(values).on_conflict_do_nothing()]


def _values(rows: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """The notices' rows, one per person, kind and ref."""
    now = datetime.now(UTC)
    return [
        {"id": uuid.uuid4().hex, "patient_id": p, "kind": k, "ref": r[:200], "recorded_at": now}
        for p, k, r in dict.fromkeys(rows)
    ]


async def _insert(conn: AsyncConnection, rows: Sequence[tuple[str, str, str]]) -> None:
    """Insert notices; one already waiting for the same person, kind and ref stays."""
    if not rows:
        return
    statement = upsert_into(conn.dialect.name, _NOTICES).values(_values(rows))
    await conn.execute(statement.on_conflict_do_nothing())
