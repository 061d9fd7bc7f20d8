"""The access log's entries and their hash chain: what an entry may hold, its canonical
serialisation and hash, and the check of one link.

An entry's ``entry_hash`` is the SHA-256 of :data:`HASH_FORMAT` and a canonical
serialisation of all its other fields, ``prev_hash`` (the hash of entry ``seq - 1``;
:data:`GENESIS_HASH` for the first) included. The log (:mod:`consent.audit`) writes them;
the signed checkpoints (:mod:`consent.checkpoints`) anchor them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import field_validator, model_validator
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from consent.reasons import IDENTITY_NUMBER_IN_TEXT, stated_reason
from store.tables import AuditEntryBase

#: Actions the gateway logs today; others are accepted if they match ``action``'s pattern.
KNOWN_ACTIONS = frozenset(
    {
        "read",
        "search",
        "everything",
        "export",
        "notify",
        "summary",
        "download-summary",
        "download-record",
        "consent-create",
        "consent-withdraw",
        "proxy-create",
        "proxy-withdraw",
        "block-create",
        "block-lift",
        "guardian-block-create",
        "guardian-block-lift",
        "seal-create",
        "seal-lift",
        "emergency-open",
        "audit-read",
        "own-data-create",
        "own-data-delete",
    }
)

#: ``prev_hash`` of the first entry.
GENESIS_HASH = "0" * 64

#: Prefixed to every hashed serialisation, so a later format cannot collide with this one.
HASH_FORMAT = b"samlad-audit-v1\n"

#: The fields covered by ``entry_hash``, fixed for HASH_FORMAT v1. A new column must be
#: added here (and the format version raised), or it would not be tamper-evident.
HASHED_FIELDS = (
    "seq",
    "recorded_at",
    "actor_kind",
    "actor_id",
    "actor_care_unit_hsa_id",
    "actor_care_provider_hsa_id",
    "on_behalf_of",
    "patient_id",
    "action",
    "resource_types",
    "returned_count",
    "returned",
    "purpose",
    "emergency",
    "emergency_reason",
    "outcome",
    "outcome_reason",
    "prev_hash",
)

_ID = re.compile(r"^[\x21-\x7e]{1,64}$")
# 10 or 12 digits, optionally with - or + before the last four: a personnummer or
# samordningsnummer, whether valid or not.
_IDENTITY_NUMBER = re.compile(r"^(?:\d{2})?\d{6}[-+]?\d{4}$")
_ACTION = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_PURPOSE = re.compile(r"^[A-Z]{2,16}$")
_REASON_CODE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{0,63}$")
_MAX_RETURNED_BYTES = 4096
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class AuditEntryCreate(AuditEntryBase):
    """An entry as the gateway hands it over; seq, time and hashes are added on append.

    Construction validates and raises ``pydantic.ValidationError`` for malformed input,
    notably any id that looks like a personnummer or samordningsnummer.
    """

    @field_validator("actor_id", "patient_id")
    @classmethod
    def _opaque_id(cls, value: str) -> str:
        return _check_id(value)

    @field_validator("actor_care_unit_hsa_id", "actor_care_provider_hsa_id", "on_behalf_of")
    @classmethod
    def _optional_id(cls, value: str | None) -> str | None:
        return None if value is None else _check_id(value)

    @field_validator("action")
    @classmethod
    def _action(cls, value: str) -> str:
        return _check(_ACTION, value, "action")

    @field_validator("purpose")
    @classmethod
    def _purpose(cls, value: str) -> str:
        return _check(_PURPOSE, value, "purpose")

    @field_validator("outcome_reason")
    @classmethod
    def _outcome_reason(cls, value: str | None) -> str | None:
        return None if value is None else _check(_REASON_CODE, value, "outcome_reason")

    @field_validator("resource_types")
    @classmethod
    def _resource_types(cls, value: list[str]) -> list[str]:
        if len(value) > 64:
            raise ValueError("too many resource types")
        return [_check(_RESOURCE_TYPE, item, "resource type") for item in value]

    @field_validator("returned")
    @classmethod
    def _returned(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_summary(value)
        if len(orjson.dumps(value)) > _MAX_RETURNED_BYTES:
            raise ValueError("the returned summary is too large")
        return value

    @field_validator("emergency_reason", mode="before")
    @classmethod
    def _clean_reason(cls, value: object) -> object:
        # The rule the emergency-access record's copy was kept by (InvalidReason is a
        # ValueError, so a failing reason is a ValidationError here).
        return stated_reason(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _emergency_needs_reason(self) -> AuditEntryCreate:
        if self.emergency and not self.emergency_reason:
            raise ValueError("emergency access needs a stated reason")
        if not self.emergency and self.emergency_reason is not None:
            raise ValueError("a reason is only recorded for emergency access")
        return self


class AuditEntryPublic(AuditEntryBase):
    """An entry as read back: for the patient's loggutdrag and for rendering."""

    seq: int
    recorded_at: datetime
    prev_hash: str
    entry_hash: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of checking the whole chain.

    ``checked`` counts the entries read, the failing one included; ``first_broken_seq``
    is the first position where a check failed (for a missing entry, its seq), and
    ``problem`` says which: ``seq-gap``, ``prev-hash-mismatch`` or ``hash-mismatch``.
    ``head_seq`` and ``head_hash`` name the last entry checked, to anchor elsewhere.
    """

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    problem: str | None = None
    head_seq: int | None = None
    head_hash: str | None = None

    def summary(self) -> str:
        """One line for operators."""
        if self.ok:
            if self.head_seq is None:
                return "audit log OK: empty"
            return (
                f"audit log OK: {self.checked} entries, head seq {self.head_seq} "
                f"hash {self.head_hash}"
            )
        return (
            f"audit log BROKEN at seq {self.first_broken_seq} ({self.problem}) "
            f"after checking {self.checked} entries"
        )


AUDIT_TABLE: Table = SQLModel.metadata.tables["audit_entry"]
#: Removals of the oldest entries past their retention (:mod:`consent.retention`).
PRUNE_TABLE: Table = SQLModel.metadata.tables["audit_prune"]


async def chain_start(conn: AsyncConnection) -> tuple[int, str]:
    """Where the chain kept begins: the seq of its first entry and the ``prev_hash`` that
    entry links to (1 and :data:`GENESIS_HASH`, unless older entries were pruned)."""
    row = (
        await conn.execute(
            select(PRUNE_TABLE.c.through_seq, PRUNE_TABLE.c.through_hash)
            .order_by(PRUNE_TABLE.c.through_seq.desc())
            .limit(1)
        )
    ).first()
    return (1, GENESIS_HASH) if row is None else (int(row.through_seq) + 1, row.through_hash)


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """The byte string that ``entry_hash`` is computed over (HASHED_FIELDS only)."""
    body: dict[str, Any] = {}
    for name in HASHED_FIELDS:
        value = fields[name]
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("audit timestamps must be timezone-aware")
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        body[name] = value
    return HASH_FORMAT + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def compute_hash(fields: Mapping[str, Any]) -> str:
    """The hex SHA-256 of an entry's canonical form (its ``entry_hash`` if untampered)."""
    return hashlib.sha256(canonical_bytes(fields)).hexdigest()


def _link_problem(row: Mapping[Any, Any], expected_seq: int, prev_hash: str) -> str | None:
    if row["seq"] != expected_seq:
        return "seq-gap"
    if row["prev_hash"] != prev_hash:
        return "prev-hash-mismatch"
    if compute_hash(row) != row["entry_hash"]:
        return "hash-mismatch"
    return None


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"malformed {what}")
    return value


def _check_id(value: str) -> str:
    _check(_ID, value, "id")
    if _IDENTITY_NUMBER.fullmatch(value):
        raise ValueError("ids in the audit log must be opaque, never an identity number")
    return value


def _check_summary(value: object, depth: int = 0) -> None:
    if depth > 4:
        raise ValueError("the returned summary is nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("the returned summary has a non-string key")
            _check_summary(key, depth + 1)
            _check_summary(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_summary(item, depth + 1)
    elif isinstance(value, str):
        if len(value) > 128 or IDENTITY_NUMBER_IN_TEXT.search(value):
            raise ValueError("the returned summary holds a long or identifying string")
    elif value is not None and not isinstance(value, bool | int):
        # No floats: they need not survive a JSON column exactly, and the hash must.
        raise ValueError("the returned summary holds only integers, strings and booleans")
