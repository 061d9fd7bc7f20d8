"""Test helpers for the access log: entries, and tampering as a database superuser would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, create_engine, text

from consent.entries import AuditEntryCreate
from store.db import sync_url

CLINICIAN = "SE2321000016-DR01"
CARE_UNIT = "SE2321000016-UNIT"
CARE_PROVIDER = "SE2321000016-PROV"


def entry(
    patient_id: str = "pat0000000000000000000000000000a", **overrides: Any
) -> AuditEntryCreate:
    """A clinician's search, allowed, unless ``overrides`` say otherwise."""
    fields: dict[str, Any] = {
        "actor_kind": "clinician",
        "actor_id": CLINICIAN,
        "actor_care_unit_hsa_id": CARE_UNIT,
        "actor_care_provider_hsa_id": CARE_PROVIDER,
        "patient_id": patient_id,
        "action": "search",
        "resource_types": ["Observation", "Condition"],
        "returned_count": 3,
        "returned": {"types": {"Observation": 2, "Condition": 1}, "sources": ["region-a"]},
        "purpose": "TREAT",
        "outcome": "allowed",
    }
    fields.update(overrides)
    return AuditEntryCreate(**fields)


@contextmanager
def connection(database_url: str) -> Iterator[Connection]:
    """A plain synchronous connection in one transaction (committed at the end)."""
    engine = create_engine(sync_url(database_url))
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


@contextmanager
def triggers_off(database_url: str) -> Iterator[Connection]:
    """A transaction in which the append-only triggers are out of the way.

    This is what an operator with full rights can do; the hash chain must still tell.
    """
    with connection(database_url) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER USER"))
            yield conn
            conn.execute(text("ALTER TABLE audit_entry ENABLE TRIGGER USER"))
            return
        saved = conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master"
                " WHERE type = 'trigger' AND tbl_name = 'audit_entry'"
            )
        ).all()
        assert saved, "the migration should have created triggers"
        for name, _ in saved:
            conn.execute(text(f'DROP TRIGGER "{name}"'))
        yield conn
        for _, sql in saved:
            conn.execute(text(sql))
