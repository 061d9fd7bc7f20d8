"""A patient's standing (consents, blocks, a clinician's running emergency access), read in
one statement on every data read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from consent.store import ConsentStore
from gateway.store.db import Database

pytestmark = pytest.mark.anyio

PATIENT, OTHER = "patient-a", "patient-b"
DOC1, DOC2 = "SE2321009001-DOC1", "SE2321009001-DOC2"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ConsentStore]:
    db = Database(database_url)
    yield ConsentStore(db)
    await db.dispose()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def test_standing_reads_every_record_of_the_patient_and_only_the_clinicians_access(
    store: ConsentStore,
) -> None:
    now = datetime.now(UTC)
    older = await store.grant(PATIENT, "care-provider", "SE2321009001-NORD", None, None)
    newer = await store.grant(
        PATIENT, "care-unit", "SE2321009001-MEDM", now - timedelta(days=1), now + timedelta(days=9)
    )
    await store.withdraw(older.id)
    block = await store.block(PATIENT, "care-unit", "SE2321009003-ONKO")
    lifted = await store.block(PATIENT, "care-provider", "SE2321009002-VAST")
    await store.lift(lifted.id)
    await store.grant(OTHER, "care-provider", "SE2321009001-NORD", None, None)
    await store.block(OTHER, "care-unit", "SE2321009001-MEDM")
    hour = timedelta(hours=1)
    await store.open_emergency(PATIENT, DOC1, "UNIT", "PROV", "earlier", None, timedelta(0))
    running = await store.open_emergency(
        PATIENT, DOC1, "SE2321009001-AKUT", "SE2321009001-NORD", "unconscious", "life", hour
    )
    await store.open_emergency(PATIENT, DOC2, "UNIT", "PROV", "another clinician", None, hour)
    await store.open_emergency(OTHER, DOC1, "UNIT", "PROV", "another patient", None, hour)

    standing = await store.standing(PATIENT, DOC1, datetime.now(UTC))

    assert [c.id for c in standing.consents] == [newer.id, older.id], "newest first"
    read_newer = standing.consents[0]
    assert (read_newer.patient_id, read_newer.grantee_type, read_newer.grantee_hsa_id) == (
        PATIENT,
        "care-unit",
        "SE2321009001-MEDM",
    )
    assert _aware(read_newer.period_start) == newer.period_start
    assert newer.period_end is not None
    assert read_newer.period_end is not None
    assert _aware(read_newer.period_end) == newer.period_end
    assert read_newer.withdrawn_at is None
    assert standing.consents[1].withdrawn_at is not None
    assert [b.id for b in standing.blocks] == [lifted.id, block.id]
    assert standing.blocks[0].lifted_at is not None
    assert (standing.blocks[1].blocked_type, standing.blocks[1].blocked_hsa_id) == (
        "care-unit",
        "SE2321009003-ONKO",
    )
    assert standing.emergency is not None
    access = standing.emergency
    assert access.id == running.id
    assert (access.clinician_hsa_id, access.care_unit_hsa_id, access.care_provider_hsa_id) == (
        DOC1,
        "SE2321009001-AKUT",
        "SE2321009001-NORD",
    )
    assert (access.reason, access.block_override_reason) == ("unconscious", "life")
    assert _aware(access.expires_at) == running.expires_at


async def test_no_emergency_access_without_a_clinician_or_after_it_ends(
    store: ConsentStore,
) -> None:
    await store.open_emergency(PATIENT, DOC1, "UNIT", "PROV", "reason", None, timedelta(hours=1))
    assert (await store.standing(PATIENT, None, datetime.now(UTC))).emergency is None
    later = datetime.now(UTC) + timedelta(hours=2)
    assert (await store.standing(PATIENT, DOC1, later)).emergency is None
    assert (await store.standing(PATIENT, DOC1, datetime.now(UTC))).emergency is not None
    assert await store.standing("nobody", DOC1, datetime.now(UTC)) == (
        await store.standing("nobody", None, datetime.now(UTC))
    )
