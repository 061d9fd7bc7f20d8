"""Checking the access log against its signed checkpoints (``samlad audit verify
--checkpoints``): the chain must be whole, and every checkpoint, from the database or the
exported file, must be signed by a trusted key and match the entries it anchors.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from consent.audit import AuditLog
from consent.checkpoints import (
    CHECKPOINT_TABLE,
    Checkpoint,
    CheckpointError,
    CheckpointVerifyKey,
    content_hash,
    digest_hex,
    instant,
    read_checkpoint_file,
)
from consent.entries import AUDIT_TABLE, ChainReport, chain_start
from store.db import Database, StoreUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AnchorReport:
    """The chain checked against checkpoints.

    ``problem`` is None when everything holds, else one of ``bad-signature``,
    ``checkpoint-conflict``, ``truncated``, ``rewritten``, ``reordered``,
    ``unanchored`` or the chain's own problem (see :class:`ChainReport`).
    ``checkpoint`` is the one verified against (the newest), or the one that failed.
    """

    chain: ChainReport
    checkpoints: int
    problem: str | None = None
    checkpoint: Checkpoint | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        """One line for operators."""
        if self.problem is None:
            if self.checkpoint is None:
                return self.chain.summary() + "; no entries, no checkpoint needed"
            cp = self.checkpoint
            return (
                f"{self.chain.summary()}; anchored at checkpoint seq {cp.seq} "
                f"(signed {instant(cp.signed_at)} by {cp.key_id}), "
                f"{(self.chain.head_seq or 0) - cp.seq} newer entries not yet anchored"
            )
        if self.problem in _CHECKPOINT_PROBLEMS:
            return f"audit log {_CHECKPOINT_PROBLEMS[self.problem]}: {self.detail}"
        return self.chain.summary()


_CHECKPOINT_PROBLEMS = {
    "bad-signature": "CHECKPOINT SIGNATURE INVALID",
    "checkpoint-conflict": "CHECKPOINTS CONFLICT",
    "truncated": "TRUNCATED",
    "rewritten": "REWRITTEN",
    "reordered": "REORDERED",
    "unanchored": "UNANCHORED",
}


async def verify_anchored(
    db: Database, key: CheckpointVerifyKey, extra: Sequence[Checkpoint] = ()
) -> AnchorReport:
    """Check the chain, then the chain against every checkpoint: the table's and ``extra``
    (those exported, e.g. read from the checkpoint file). Names the first problem found:
    a bad signature first, then conflicting checkpoints, then the lowest checkpoint the
    chain disagrees with, then a break in the chain itself."""
    # Checkpoints first, the entries after: with the gateway appending meanwhile, every
    # checkpoint read is then one the entries read already reach.
    async with db.session() as session:
        conn = await session.connection()
        stored = (await conn.execute(select(CHECKPOINT_TABLE))).mappings().all()
    checkpoints = [Checkpoint.from_row(row) for row in stored] + list(extra)
    chain = await AuditLog(db).verify()
    count = len(checkpoints)
    for checkpoint in sorted(checkpoints, key=lambda c: c.seq):
        if not key.verifies(checkpoint):
            detail = f"the checkpoint at seq {checkpoint.seq} is not signed by {key.key_id}"
            return AnchorReport(chain, count, "bad-signature", checkpoint, detail)
    by_seq: dict[int, Checkpoint] = {}
    for checkpoint in checkpoints:
        if by_seq.setdefault(checkpoint.seq, checkpoint) != checkpoint:
            detail = f"two different signed checkpoints at seq {checkpoint.seq}"
            return AnchorReport(chain, count, "checkpoint-conflict", checkpoint, detail)
    if not by_seq:
        if chain.head_seq is not None and chain.ok:
            detail = f"no checkpoint covers the {chain.checked} entries"
            return AnchorReport(chain, 0, "unanchored", None, detail)
        return AnchorReport(chain, 0, None if chain.ok else "chain", None)
    async with db.session() as session:
        conn = await session.connection()
        first, start_hash = await chain_start(conn)
        # A prune must end at a signed checkpoint; those before it anchor removed entries.
        if first > 1 and (first - 1 not in by_seq or by_seq[first - 1].head_hash != start_hash):
            detail = f"entries up to seq {first - 1} were removed at no signed checkpoint"
            return AnchorReport(chain, count, "unanchored", by_seq.get(first - 1), detail)
        ordered = [by_seq[seq] for seq in sorted(by_seq) if seq >= first]
        if not ordered:
            return AnchorReport(chain, count, None if chain.ok else "chain", by_seq[first - 1])
        found = await _compare(conn, ordered, chain)
    if found is not None:
        problem, checkpoint, detail = found
        return AnchorReport(chain, count, problem, checkpoint, detail)
    return AnchorReport(chain, count, None if chain.ok else "chain", ordered[-1])


async def _compare(
    conn: AsyncConnection, ordered: Sequence[Checkpoint], chain: ChainReport
) -> tuple[str, Checkpoint, str] | None:
    """Compare the stored entries with each checkpoint, lowest first."""
    wanted = {c.seq for c in ordered} | {c.prev_seq for c in ordered}
    prefix: dict[int, int] = {0: 0}  # content-hash sums of entries 1..seq, at wanted seqs
    hash_at: dict[int, str] = {}
    total, last_seq, after = 0, 0, None
    while True:
        query = select(AUDIT_TABLE).order_by(AUDIT_TABLE.c.seq).limit(1000)
        if after is not None:
            query = query.where(AUDIT_TABLE.c.seq > after)
        rows = (await conn.execute(query)).mappings().all()
        if not rows:
            break
        for row in rows:
            seq = int(row["seq"])
            total += content_hash(row)
            last_seq = max(last_seq, seq)
            if seq in wanted:
                prefix[seq] = total
                hash_at[seq] = row["entry_hash"]
        after = rows[-1]["seq"]
    broken = None if chain.ok else chain.first_broken_seq
    for cp in ordered:
        if last_seq < cp.seq:
            return (
                "truncated",
                cp,
                f"the chain ends at seq {last_seq}, but a checkpoint signed "
                f"{instant(cp.signed_at)} covers up to seq {cp.seq}",
            )
        links_hold = broken is None or not cp.prev_seq < broken <= cp.seq
        if hash_at.get(cp.seq) == cp.head_hash and links_hold:
            continue
        start, end = prefix.get(cp.prev_seq), prefix.get(cp.seq)
        same_entries = (
            start is not None and end is not None and digest_hex(end - start) == cp.entries_digest
        )
        if same_entries:
            return (
                "reordered",
                cp,
                f"entries {cp.prev_seq + 1}..{cp.seq} are the ones signed, in another order",
            )
        return (
            "rewritten",
            cp,
            f"entries {cp.prev_seq + 1}..{cp.seq} differ from those signed at seq {cp.seq}",
        )
    return None


async def verify_command(
    database_url: str, key: CheckpointVerifyKey, checkpoint_file: Path | None
) -> int:
    """``samlad audit verify``: check the chain against its checkpoints, print one line;
    exit 0 if all holds, 1 on any problem, 2 when the database or the checkpoint file
    cannot be read (nothing was checked)."""
    exported: list[Checkpoint] = []
    file_missing = False
    if checkpoint_file is not None:
        try:
            exported = read_checkpoint_file(checkpoint_file)
        except FileNotFoundError:
            file_missing = True
            print(f"audit log: no checkpoint file at {checkpoint_file}", file=sys.stderr)
        except OSError:
            print("audit log: the checkpoint file cannot be read", file=sys.stderr)
            return 2
        except CheckpointError as exc:
            print(f"audit log CHECKPOINT FILE DAMAGED: {exc}")
            return 1
    db = Database(database_url)
    try:
        report = await verify_anchored(db, key, exported)
    except StoreUnavailable:
        print("audit log: the database cannot be read", file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    if report.ok and file_missing and report.chain.head_seq is not None:
        # The first entry is exported at once: a log with entries and no file lost it.
        print(
            f"audit log UNANCHORED: no checkpoint file at {checkpoint_file}; the database's "
            "own checkpoints hold, but they are no anchor against its administrators"
        )
        return 1
    print(report.summary())
    return 0 if report.ok else 1
