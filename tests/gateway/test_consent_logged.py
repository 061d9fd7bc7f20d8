"""A consent, a block, a withdrawal and a lifting are committed with their access-log
entry, or not at all: a client told that the change failed finds it not made."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

import consent.audit
from consent.entries import AUDIT_TABLE
from consent.errors import AccessLogUnavailable
from store.db import Database
from store.tables import BlockRecord, ConsentRecord
from tests.gateway.conftest import NORD_PROVIDER as NORD
from tests.gateway.conftest import Gateway
from tests.gateway.consent_helpers import block, consent_body, grant

pytestmark = pytest.mark.anyio


@contextmanager
def failing_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The log append fails inside the transaction that already holds the change."""
    insert_at_head = consent.audit._insert_at_head

    async def failing(conn: AsyncConnection, batch: Any) -> Any:
        await insert_at_head(conn, batch)
        raise AccessLogUnavailable("the access log is unavailable")

    monkeypatch.setattr(consent.audit, "_insert_at_head", failing)
    try:
        yield
    finally:
        monkeypatch.undo()


async def rows(db: Database, model: Any, patient_id: str) -> list[Any]:
    table = model.__table__
    async with db.connect() as conn:
        query = select(table).where(table.c.patient_id == patient_id)
        return list((await conn.execute(query)).mappings().all())


async def logged(db: Database, patient_id: str, action: str) -> int:
    query = select(AUDIT_TABLE.c.seq).where(
        AUDIT_TABLE.c.patient_id == patient_id, AUDIT_TABLE.c.action == action
    )
    async with db.connect() as conn:
        return len((await conn.execute(query)).all())


@pytest.mark.parametrize(("kind", "model"), [("permit", ConsentRecord), ("deny", BlockRecord)])
async def test_no_consent_or_block_is_stored_when_its_entry_cannot_be_written(
    gateway: Gateway, db: Database, monkeypatch: pytest.MonkeyPatch, kind: str, model: Any
) -> None:
    patient_id = await gateway.patient_id()
    with failing_log(monkeypatch):
        response = await gateway.client.post(
            "/fhir/Consent",
            json=consent_body(patient_id, NORD, kind=kind),
            headers=gateway.citizen(),
        )
    assert response.status_code == 503
    assert await rows(db, model, patient_id) == []
    action = "consent-create" if kind == "permit" else "block-create"
    assert await logged(db, patient_id, action) == 0
    if kind == "permit":
        read = await gateway.client.get(f"/fhir/Patient/{patient_id}", headers=gateway.clinician())
        assert read.status_code == 403, "the failed consent grants nothing"


@pytest.mark.parametrize("kind", ["permit", "deny"])
async def test_a_withdrawal_or_lifting_is_not_made_when_its_entry_cannot_be_written(
    gateway: Gateway, db: Database, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    patient_id = await gateway.patient_id()
    record_id = await (grant if kind == "permit" else block)(gateway, patient_id, NORD)
    current = await gateway.client.get(f"/fhir/Consent/{record_id}", headers=gateway.citizen())
    ended = current.json() | {"status": "inactive"}
    with failing_log(monkeypatch):
        response = await gateway.client.put(
            f"/fhir/Consent/{record_id}", json=ended, headers=gateway.citizen()
        )
    assert response.status_code == 503
    after = await gateway.client.get(f"/fhir/Consent/{record_id}", headers=gateway.citizen())
    assert after.json()["status"] == "active", "the change was not made"
    action = "consent-withdraw" if kind == "permit" else "block-lift"
    assert await logged(db, patient_id, action) == 0
    again = await gateway.client.put(
        f"/fhir/Consent/{record_id}", json=ended, headers=gateway.citizen()
    )
    assert again.status_code == 200
    assert again.json()["status"] == "inactive"
    assert await logged(db, patient_id, action) == 1
