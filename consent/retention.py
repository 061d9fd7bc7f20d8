"""Removing access-log entries past their retention, so that the chain still verifies.

The log is kept at least ``audit_retention_days`` (three years by default). Older entries
are removed only by an explicit command (``samlad audit prune``), never in the
background, and only like this, in order:

1. a checkpoint of the head is written and exported first (so everything the log holds
   is anchored, outside the database too, before anything is removed);
2. the newest signed checkpoint whose head entry is older than the cutoff, and not the
   newest entry of all, is the boundary: the entries up to it are removed, in one
   transaction under the append lock that also records the removal in ``audit_prune``
   (``through_seq`` and that checkpoint's ``head_hash``). The database refuses to
   delete an entry no such record covers (migration 0016's triggers).

The chain kept then starts at ``through_seq + 1``, whose ``prev_hash`` is the signed
head hash (:func:`consent.entries.chain_start`), and :func:`consent.verify.verify_anchored`
checks the removal against that checkpoint. Entries older than the cutoff but newer than
the boundary stay until a later run finds a checkpoint past them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from consent.audit import APPEND_LOCK, AuditLog
from consent.checkpoints import CHECKPOINT_TABLE, Checkpointer
from consent.entries import AUDIT_TABLE, PRUNE_TABLE, chain_start
from store.db import Database, StoreUnavailable


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What a prune did: entries removed, and where the chain kept now starts."""

    removed: int
    first_kept: int

    def summary(self) -> str:
        if not self.removed:
            return "audit log: no entries past their retention could be removed"
        return (
            f"audit log: {self.removed} entries past their retention removed; "
            f"the chain kept starts at seq {self.first_kept}"
        )


async def _boundary(conn: AsyncConnection, cutoff: datetime) -> tuple[int, str] | None:
    """The newest checkpoint (seq, head hash) at an entry older than ``cutoff``, past
    the last prune and short of the head."""
    first, _ = await chain_start(conn)
    head = (
        await conn.execute(select(AUDIT_TABLE.c.seq).order_by(AUDIT_TABLE.c.seq.desc()))
    ).first()
    if head is None:
        return None
    row = (
        await conn.execute(
            select(CHECKPOINT_TABLE.c.seq, CHECKPOINT_TABLE.c.head_hash)
            .join(AUDIT_TABLE, AUDIT_TABLE.c.seq == CHECKPOINT_TABLE.c.seq)
            .where(
                AUDIT_TABLE.c.recorded_at < cutoff,
                CHECKPOINT_TABLE.c.seq >= first,
                CHECKPOINT_TABLE.c.seq < head.seq,
            )
            .order_by(CHECKPOINT_TABLE.c.seq.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else (int(row.seq), str(row.head_hash))


async def prune(db: Database, log: AuditLog, cutoff: datetime, now: datetime) -> PruneReport:
    """Remove the entries recorded before ``cutoff`` that a signed checkpoint ends (see
    the module's docstring); ``log`` must have its checkpointer."""
    await log.checkpoint_if_due(force=True)

    async def work(conn: AsyncConnection) -> PruneReport:
        boundary = await _boundary(conn, cutoff)
        if boundary is None:
            return PruneReport(0, (await chain_start(conn))[0])
        through, head_hash = boundary
        await conn.execute(
            insert(PRUNE_TABLE).values(
                through_seq=through, through_hash=head_hash, cutoff=cutoff, pruned_at=now
            )
        )
        removed = await conn.execute(delete(AUDIT_TABLE).where(AUDIT_TABLE.c.seq <= through))
        return PruneReport(int(removed.rowcount or 0), through + 1)

    return await db.write(work, lock=APPEND_LOCK)


async def prune_command(
    database_url: str,
    checkpoints: Checkpointer,
    retention_days: int,
    now: datetime | None = None,
) -> int:
    """``samlad audit prune``: remove the entries older than ``retention_days``, after a
    checkpoint (exported before the command ends); print one line. Exit 0, or 2 when
    the database cannot be written (nothing was removed)."""
    db = Database(database_url)
    log = AuditLog(db, checkpoints=checkpoints)
    moment = now or datetime.now(UTC)
    try:
        report = await prune(db, log, moment - timedelta(days=retention_days), moment)
        await log.aclose()  # the checkpoint exported
    except StoreUnavailable:
        print("audit log: the database cannot be written; nothing was removed", file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    print(report.summary())
    return 0
