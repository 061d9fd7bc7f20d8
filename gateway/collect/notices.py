"""What a person asked to be told of, written to the ``notice`` outbox where it happens.

News (a new or changed lab result, note or appointment) is recorded by the cache's change
detection (:mod:`gateway.collect.changes`) in the transaction that writes the chunks; an
access by anyone but the person (care staff, a system client, a guardian or a proxy) by
the access log (:class:`consent.audit.AuditLog`'s ``on_written``) in the transaction that
appends the entry. Nothing is recorded for a person without a ``notice_setting`` that
asks for the kind, except emergency access, recorded for everyone with a channel. One
notice per kind and ``ref`` waits at a time: the rest are the same news. Nothing in a
notice is health data: a kind, an opaque id and a resource or reader reference, which
never reach a message.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.subscriptions import TOPICS
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


def _is_told_access(entry: Mapping[str, Any]) -> bool:
    """A read by someone other than the person: care staff, an integrator, a guardian, or
    a citizen acting for the person (a proxy is logged as the citizen they are, by their
    own opaque id, which is not the person's)."""
    return (
        (entry["actor_kind"] != "citizen" or entry["actor_id"] != entry["patient_id"])
        and entry["outcome"] == "allowed"
        and not any(part in entry["action"] for part in _NOT_READS)
    )


async def record_accesses(conn: AsyncConnection, entries: Sequence[Mapping[str, Any]]) -> None:
    """Notices of the accesses among the access log's new ``entries`` that someone
    other than the person made, for those who asked (emergency access: for everyone
    with a channel). Reads nothing when no entry is such an access."""
    accesses = [e for e in entries if _is_told_access(e)]
    if not accesses:
        return
    query = select(
        _SETTINGS.c.patient_id, _SETTINGS.c.kinds, _SETTINGS.c.email, _SETTINGS.c.webhook
    ).where(_SETTINGS.c.patient_id.in_(sorted({e["patient_id"] for e in accesses})))
    asked: dict[str, bool] = {}
    for row in await conn.execute(query):
        if row.email is not None or row.webhook is not None:
            asked[row.patient_id] = ACCESS in row.kinds
    rows = [
        (e["patient_id"], ACCESS, f"{e['actor_kind']}:{e['actor_id']}")
        for e in accesses
        if e["patient_id"] in asked and (asked[e["patient_id"]] or e["emergency"])
    ]
    await _insert(conn, rows)


async def _insert(conn: AsyncConnection, rows: Sequence[tuple[str, str, str]]) -> None:
    """Insert notices; one already waiting for the same person, kind and ref stays."""
    if not rows:
        return
    now = datetime.now(UTC)
    values = [
        {"id": uuid.uuid4().hex, "patient_id": p, "kind": k, "ref": r[:200], "recorded_at": now}
        for p, k, r in dict.fromkeys(rows)
    ]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_NOTICES).values(values)
    await conn.execute(statement.on_conflict_do_nothing())
