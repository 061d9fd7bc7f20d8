"""Signed checkpoints of the access log's chain head, and where they are exported.

A chain shows a changed, removed or inserted entry, but not that its newest entries
were cut off, nor a chain recomputed from scratch: nothing outside the table remembers
the head. A checkpoint does. It names the head (``seq`` and ``head_hash``), the
previous checkpoint's ``seq`` (``prev_seq``), an order-independent digest of the entries
between the two (``entries_digest``), the time, and is signed with the log's own Ed25519
key (``audit_checkpoint_key``), which the database does not hold.

Checkpoints are written inside the append transaction, under the append lock (see
:mod:`consent.audit`), when ``every_entries`` entries are unanchored, when the last
checkpoint is ``every_seconds`` old and entries arrived since, with the first entry of
a log, and on clean shutdown.
Being under the one lock that makes the chain linear, they are linear too, however many
processes append: each names the head it was taken at and links to the one before;
the primary key on ``seq`` refuses a second checkpoint at the same position. After the
commit, each is handed to the configured :class:`CheckpointSink` (an fsync'd JSON lines
file; a webhook or another database would implement the same one method), in a task of
its own so that the next batch of entries does not wait for it.

:func:`consent.verify.verify_anchored` checks the chain against every checkpoint it is given (the
table's and the file's) and names what it finds: ``bad-signature``,
``checkpoint-conflict`` (two checkpoints for one position), ``truncated``,
``rewritten``, ``reordered``, ``unanchored``, or a break in the chain itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from consent.entries import AUDIT_TABLE, GENESIS_HASH, canonical_bytes
from store.db import StoreUnavailable

log = logging.getLogger(__name__)

#: Prefixed to every signed serialisation, so a later format cannot collide with this one.
CHECKPOINT_FORMAT = b"samlad-audit-checkpoint-v1\n"

_DIGEST_MODULUS = 2**256


class CheckpointError(ValueError):
    """A checkpoint (or a line of the checkpoint file) is malformed."""


CHECKPOINT_TABLE = SQLModel.metadata.tables["audit_checkpoint"]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One signed checkpoint of the chain head."""

    seq: int
    head_hash: str
    prev_seq: int
    entries_digest: str
    signed_at: datetime
    key_id: str
    signature: str

    def payload(self) -> bytes:
        """The bytes the signature covers: every field but the signature."""
        return CHECKPOINT_FORMAT + orjson.dumps(
            {
                "seq": self.seq,
                "head_hash": self.head_hash,
                "prev_seq": self.prev_seq,
                "entries_digest": self.entries_digest,
                "signed_at": instant(self.signed_at),
                "key_id": self.key_id,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form, as exported (one line of the checkpoint file)."""
        return {
            "seq": self.seq,
            "head_hash": self.head_hash,
            "prev_seq": self.prev_seq,
            "entries_digest": self.entries_digest,
            "signed_at": instant(self.signed_at),
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Read the JSON form; raises :class:`CheckpointError` if it is malformed."""
        try:
            fields = {name: data[name] for name in _FIELDS}
            if set(data) != set(_FIELDS):
                raise CheckpointError("unexpected fields in a checkpoint")
            fields["signed_at"] = datetime.fromisoformat(fields["signed_at"])
            checkpoint = cls(**fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError("malformed checkpoint") from exc
        if not (
            type(checkpoint.seq) is int
            and type(checkpoint.prev_seq) is int
            and 0 <= checkpoint.prev_seq < checkpoint.seq
            and checkpoint.signed_at.tzinfo is not None
            and all(
                isinstance(value, str)
                for value in (
                    checkpoint.head_hash,
                    checkpoint.entries_digest,
                    checkpoint.key_id,
                    checkpoint.signature,
                )
            )
        ):
            raise CheckpointError("malformed checkpoint")
        return checkpoint

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Checkpoint:
        return cls(**{name: row[name] for name in _FIELDS})


_FIELDS = (
    "seq",
    "head_hash",
    "prev_seq",
    "entries_digest",
    "signed_at",
    "key_id",
    "signature",
)


def instant(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("checkpoint times must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class CheckpointVerifyKey:
    """The public half: checks a checkpoint's signature."""

    def __init__(self, public: Ed25519PublicKey) -> None:
        self._public = public
        raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        #: Names the key in each checkpoint: the first 16 bytes of SHA-256 of the raw key.
        self.key_id = "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]

    def verifies(self, checkpoint: Checkpoint) -> bool:
        """Whether ``checkpoint`` was signed by this key's private half."""
        if checkpoint.key_id != self.key_id:
            return False
        try:
            signature = base64.urlsafe_b64decode(checkpoint.signature + "==")
            self._public.verify(signature, checkpoint.payload())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


class CheckpointKey:
    """The log's own Ed25519 signing key (``audit_checkpoint_key``: 32 bytes, in hex)."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.verify_key = CheckpointVerifyKey(private.public_key())

    @classmethod
    def from_hex(cls, seed: str) -> CheckpointKey:
        """The key from its 32-byte seed written as 64 hex digits."""
        try:
            raw = bytes.fromhex(seed)
        except ValueError as exc:
            raise ValueError("the checkpoint key must be 64 hex digits") from exc
        if len(raw) != 32:
            raise ValueError("the checkpoint key must be 64 hex digits")
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def sign(
        self,
        *,
        seq: int,
        head_hash: str,
        prev_seq: int,
        entries_digest: str,
        signed_at: datetime,
    ) -> Checkpoint:
        """A checkpoint of these fields, signed."""
        unsigned = Checkpoint(
            seq=seq,
            head_hash=head_hash,
            prev_seq=prev_seq,
            entries_digest=entries_digest,
            signed_at=signed_at.astimezone(UTC),
            key_id=self.verify_key.key_id,
            signature="",
        )
        signature = self._private.sign(unsigned.payload())
        encoded = base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii")
        return _with_signature(unsigned, encoded)


def _with_signature(checkpoint: Checkpoint, signature: str) -> Checkpoint:
    return Checkpoint(
        seq=checkpoint.seq,
        head_hash=checkpoint.head_hash,
        prev_seq=checkpoint.prev_seq,
        entries_digest=checkpoint.entries_digest,
        signed_at=checkpoint.signed_at,
        key_id=checkpoint.key_id,
        signature=signature,
    )


def content_hash(row: Mapping[Any, Any]) -> int:
    """An entry's content (every hashed field but its position and link) as a number."""
    neutral = {**row, "seq": 0, "prev_hash": GENESIS_HASH}
    return int.from_bytes(hashlib.sha256(canonical_bytes(neutral)).digest(), "big")


def entries_digest(rows: Iterable[Mapping[Any, Any]]) -> str:
    """An order-independent digest of entries: the sum of their content hashes mod 2^256.

    The same entries in another order give the same digest, which is how verification
    tells a reordered stretch of the chain from a rewritten one.
    """
    return digest_hex(sum(content_hash(row) for row in rows))


def digest_hex(total: int) -> str:
    return format(total % _DIGEST_MODULUS, "064x")


class CheckpointSink(Protocol):
    """Somewhere outside the database that keeps checkpoints: one method."""

    async def publish(self, checkpoint: Checkpoint) -> None:
        """Keep ``checkpoint`` durably; raise OSError (or StoreUnavailable) if it cannot."""
        ...


class JsonLinesFile:
    """An append-only file of checkpoints, one JSON object a line, fsync'd after each.

    Opened with ``O_APPEND`` for each line and written with one ``write``, so several
    processes on one host can share it; lines may then be out of ``seq`` order, which
    :func:`read_checkpoint_file` does not mind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def publish(self, checkpoint: Checkpoint) -> None:
        line = orjson.dumps(checkpoint.to_json()) + b"\n"
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:  # make the new file's name durable too
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def read_checkpoint_file(path: Path) -> list[Checkpoint]:
    """Every checkpoint in a JSON lines file; raises CheckpointError naming a bad line.

    A last line without its newline (a write cut short by a crash) is ignored.
    """
    data = path.read_bytes()
    lines = data.split(b"\n")
    if not data.endswith(b"\n"):
        lines = lines[:-1]
    checkpoints = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            checkpoints.append(Checkpoint.from_json(orjson.loads(line)))
        except (orjson.JSONDecodeError, CheckpointError, AttributeError) as exc:
            raise CheckpointError(f"line {number} of the checkpoint file is malformed") from exc
    return checkpoints


def _now() -> datetime:
    return datetime.now(UTC)


class Checkpointer:
    """Decides when a checkpoint is due, writes it with the chain, hands it to the sinks.

    ``clock`` gives the checkpoint's time (inject one in tests).
    """

    def __init__(
        self,
        key: CheckpointKey,
        *,
        every_entries: int = 100,
        every_seconds: float = 60.0,
        sinks: Sequence[CheckpointSink] = (),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        if every_entries < 1 or every_seconds <= 0:
            raise ValueError("checkpoint bounds must be positive")
        self.key = key
        self.every_entries = every_entries
        self.every = timedelta(seconds=every_seconds)
        self._sinks = list(sinks)
        self._clock = clock
        # The newest checkpoint this process has read (seq, time): the true newest is the
        # same or later, so if not even this one makes a checkpoint due, none is, and
        # most batches skip reading the checkpoint table.
        self._known: tuple[int, datetime] | None = None

    async def write_if_due(
        self,
        conn: AsyncConnection,
        appended: Sequence[Mapping[str, Any]] = (),
        *,
        force: bool = False,
    ) -> Checkpoint | None:
        """Write a checkpoint of the head if one is due; the caller holds the append lock.

        ``appended`` are the entries just inserted in this transaction (the head is the
        last of them; without any, it is read). ``force`` writes one whenever the head has
        moved since the last checkpoint, whatever the bounds (for shutdown).
        """
        now = self._clock()
        if appended and not force and self._known is not None:
            known_seq, known_at = self._known
            if appended[-1]["seq"] - known_seq < self.every_entries and now - known_at < self.every:
                return None
        last = (
            await conn.execute(
                select(CHECKPOINT_TABLE.c.seq, CHECKPOINT_TABLE.c.signed_at)
                .order_by(CHECKPOINT_TABLE.c.seq.desc())
                .limit(1)
            )
        ).first()
        if last is not None:
            self._known = (int(last.seq), last.signed_at)
        if appended:
            head_seq, head_hash = appended[-1]["seq"], appended[-1]["entry_hash"]
        else:
            head = (
                await conn.execute(
                    select(AUDIT_TABLE.c.seq, AUDIT_TABLE.c.entry_hash)
                    .order_by(AUDIT_TABLE.c.seq.desc())
                    .limit(1)
                )
            ).first()
            if head is None:
                return None
            head_seq, head_hash = head.seq, head.entry_hash
        last_seq = 0 if last is None else int(last.seq)
        if head_seq < last_seq:
            # Only a row written past the gateway can be ahead of the chain; no checkpoint
            # is written until the chain passes it, and verify names it.
            log.error("an audit checkpoint lies beyond the chain's head: run samlad audit verify")
        if head_seq <= last_seq:
            return None
        due = (
            force
            or last is None
            or head_seq - last_seq >= self.every_entries
            or now - last.signed_at >= self.every
        )
        if not due:
            return None
        if last is not None and last.signed_at > now:
            now = last.signed_at  # checkpoint times never go back (hosts' clocks differ)
        in_memory = [row for row in appended if row["seq"] > last_seq]
        first_in_memory = in_memory[0]["seq"] if in_memory else head_seq + 1
        stored = (
            await conn.execute(
                select(AUDIT_TABLE)
                .where(AUDIT_TABLE.c.seq > last_seq, AUDIT_TABLE.c.seq < first_in_memory)
                .order_by(AUDIT_TABLE.c.seq)
            )
        ).mappings()
        checkpoint = self.key.sign(
            seq=head_seq,
            head_hash=head_hash,
            prev_seq=last_seq,
            entries_digest=entries_digest([*stored, *in_memory]),
            signed_at=now,
        )
        await conn.execute(
            insert(CHECKPOINT_TABLE),
            [{**checkpoint.to_json(), "signed_at": checkpoint.signed_at}],
        )
        return checkpoint

    async def publish(self, checkpoint: Checkpoint) -> None:
        """Hand a committed checkpoint to every sink; a sink's failure is logged, not
        raised: the checkpoint is in the database, and the next one covers it anyway."""
        for sink in self._sinks:
            try:
                await sink.publish(checkpoint)
            except (OSError, StoreUnavailable) as exc:
                log.error(
                    "audit checkpoint at seq %d not exported: %s",
                    checkpoint.seq,
                    type(exc).__name__,
                )


# -- Verification ---------------------------------------------------------------------
