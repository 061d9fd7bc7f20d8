"""A patient's standing (consents, blocks, a clinician's running emergency access, the seals
in force, whether they recorded anything, what they asked to be told of), read in one
statement on every data read; an emergency opening is stored with its log entry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

import consent.audit
from consent.audit import AuditLog
from consent.entries import AUDIT_TABLE, AuditEntryCreate
from consent.errors import AccessLogUnavailable
from consent.reasons import InvalidReason, stated_reason
from consent.seals import SealRequest
from consent.store import ConsentStore
from store.db import Database, StoreUnavailable
from store.jobs import NoticeSetting
from store.tables import EmergencyAccess, OwnResource, table_of
from tests.consent.helpers import entry

pytestmark = pytest.mark.anyio

PATIENT, OTHER = "patient-a", "patient-b"
DOC1, DOC2 = "SE2321009001-DOC1", "SE2321009001-DOC2"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def store(db: Database) -> ConsentStore:
    return ConsentStore(db)


def opening_entry(
    patient_id: str, clinician: str, unit: str, provider: str, reason: str
) -> AuditEntryCreate:
    return entry(
        patient_id,
        actor_id=clinician,
        actor_care_unit_hsa_id=unit,
        actor_care_provider_hsa_id=provider,
        action="emergency-open",
        resource_types=[],
        returned_count=0,
        returned={},
        purpose="ETREAT",
        emergency=True,
        emergency_reason=reason,
    )


async def open_emergency(
    store: ConsentStore,
    log: AuditLog,
    patient_id: str,
    clinician: str,
    unit: str,
    provider: str,
    reason: str,
    override: str | None,
    duration: timedelta,
) -> EmergencyAccess:
    """Open an emergency access with the log entry the gateway writes for it."""
    logged_as = opening_entry(patient_id, clinician, unit, provider, reason)
    return await store.open_emergency(
        patient_id,
        clinician,
        unit,
        provider,
        reason,
        override,
        duration,
        log=log,
        logged_as=logged_as,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def test_standing_reads_every_record_of_the_patient_and_only_the_clinicians_access(
    store: ConsentStore, db: Database
) -> None:
    log = AuditLog(db)
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
    await open_emergency(store, log, PATIENT, DOC1, "UNIT", "PROV", "earlier", None, timedelta(0))
    running = await open_emergency(
        store,
        log,
        PATIENT,
        DOC1,
        "SE2321009001-AKUT",
        "SE2321009001-NORD",
        "unconscious",
        "life",
        hour,
    )
    await open_emergency(store, log, PATIENT, DOC2, "UNIT", "PROV", "another clinician", None, hour)
    await open_emergency(store, log, OTHER, DOC1, "UNIT", "PROV", "another patient", None, hour)

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
    store: ConsentStore, db: Database
) -> None:
    hour = timedelta(hours=1)
    await open_emergency(store, AuditLog(db), PATIENT, DOC1, "UNIT", "PROV", "reason", None, hour)
    assert (await store.standing(PATIENT, None, datetime.now(UTC))).emergency is None
    later = datetime.now(UTC) + timedelta(hours=2)
    assert (await store.standing(PATIENT, DOC1, later)).emergency is None
    assert (await store.standing(PATIENT, DOC1, datetime.now(UTC))).emergency is not None
    assert await store.standing("nobody", DOC1, datetime.now(UTC)) == (
        await store.standing("nobody", None, datetime.now(UTC))
    )


async def _openings(db: Database) -> list[Any]:
    async with db.connect() as conn:
        table = EmergencyAccess.__table__  # type: ignore[attr-defined]
        return list((await conn.execute(select(table))).all())


async def _logged(db: Database) -> list[Any]:
    async with db.connect() as conn:
        return list((await conn.execute(select(AUDIT_TABLE))).mappings().all())


async def test_an_opening_is_kept_with_its_log_entry_and_the_same_redacted_reason(
    store: ConsentStore, db: Database
) -> None:
    reason = "Medvetslös,\x00 pnr 19121212-1212\u200b enligt anhörig"
    override = "Fara för liv\n(anhörig 121212-1212)"
    await open_emergency(
        store, AuditLog(db), PATIENT, DOC1, "UNIT", "PROV", reason, override, timedelta(hours=1)
    )
    ((opening,), (logged,)) = (await _openings(db), await _logged(db))
    assert opening.reason == logged["emergency_reason"] == stated_reason(reason)
    assert opening.reason == "Medvetslös, pnr [identitetsnummer borttaget] enligt anhörig"
    assert opening.block_override_reason == "Fara för liv (anhörig [identitetsnummer borttaget])"
    assert (logged["action"], logged["emergency"]) == ("emergency-open", True)


async def test_no_opening_is_stored_when_its_log_entry_cannot_be(
    store: ConsentStore, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry fails after the opening was inserted in its transaction: both go."""
    insert_at_head = consent.audit._insert_at_head

    async def failing(conn: AsyncConnection, batch: Any) -> Any:
        await insert_at_head(conn, batch)
        raise AccessLogUnavailable("the access log is unavailable")

    monkeypatch.setattr(consent.audit, "_insert_at_head", failing)
    log = AuditLog(db)
    with pytest.raises(StoreUnavailable):
        await open_emergency(
            store, log, PATIENT, DOC1, "UNIT", "PROV", "Hjärtstopp", None, timedelta(hours=1)
        )
    assert await _openings(db) == []
    assert await _logged(db) == []
    assert (await store.standing(PATIENT, DOC1, datetime.now(UTC))).emergency is None

    monkeypatch.undo()  # the log works again: the next opening is kept, with its entry
    await open_emergency(
        store, log, PATIENT, DOC1, "UNIT", "PROV", "Hjärtstopp", None, timedelta(hours=1)
    )
    assert len(await _openings(db)) == len(await _logged(db)) == 1


@pytest.mark.parametrize(
    ("reason", "override"),
    [
        ("\x00\x00\x00\x00", None),
        ("\u200b\u200b\u200b\u200b", None),
        ("Hjärtstopp", "\ufeff\u200d\u2060\x7f"),
    ],
)
async def test_a_blank_reason_stores_nothing(
    store: ConsentStore, db: Database, reason: str, override: str | None
) -> None:
    # (the log entry cannot even be made with a blank reason: the same rule)
    logged_as = opening_entry(PATIENT, DOC1, "UNIT", "PROV", "Hjärtstopp")
    with pytest.raises(InvalidReason):
        await store.open_emergency(
            PATIENT,
            DOC1,
            "UNIT",
            "PROV",
            reason,
            override,
            timedelta(hours=1),
            log=AuditLog(db),
            logged_as=logged_as,
        )
    assert await _openings(db) == []
    assert await _logged(db) == []


async def test_an_opening_must_come_with_its_own_log_entry(
    store: ConsentStore, db: Database
) -> None:
    for logged_as in (
        opening_entry(OTHER, DOC1, "UNIT", "PROV", "Hjärtstopp"),
        opening_entry(PATIENT, DOC2, "UNIT", "PROV", "Hjärtstopp"),
        opening_entry(PATIENT, DOC1, "UNIT", "PROV", "another reason"),
    ):
        with pytest.raises(ValueError, match="emergency opening"):
            await store.open_emergency(
                PATIENT,
                DOC1,
                "UNIT",
                "PROV",
                "Hjärtstopp",
                None,
                timedelta(hours=1),
                log=AuditLog(db),
                logged_as=logged_as,
            )
    assert await _openings(db) == []


async def test_standing_names_the_seals_in_force_and_whether_the_person_recorded_anything(
    store: ConsentStore, db: Database
) -> None:
    log = AuditLog(db)
    logged = (log, entry(PATIENT, action="seal-create"))
    record = await store.seals.seal(SealRequest(PATIENT, "care-unit", "SE2321009003-ONKO"), logged)
    period = SealRequest(PATIENT, "period", first_day=date(2024, 1, 1), last_day=date(2024, 6, 30))
    dated = await store.seals.seal(period, logged)
    delayed = await store.seals.seal(SealRequest(PATIENT, "delayed-release", delay_days=21), logged)
    lifted = await store.seals.seal(SealRequest(PATIENT, "record"), logged)
    await store.seals.lift(lifted.id, logged)
    await store.seals.seal(SealRequest(OTHER, "record"), (log, entry(OTHER, action="seal-create")))
    now = datetime.now(UTC)
    assert not (await store.standing(PATIENT, None, now)).holds_own

    async with db.connect() as conn:
        own = {"patient_id": OTHER, "resource_type": "Observation", "created_at": now}
        await conn.execute(insert(table_of(OwnResource)).values(id="o1", body=b"x", **own))
        await conn.commit()
    standing = await store.standing(PATIENT, DOC1, now)
    others = await store.standing(OTHER, None, now)

    assert [s.id for s in standing.seals] == [delayed.id, dated.id, record.id], "in force only"
    assert (standing.seals[2].kind, standing.seals[2].hsa_id) == ("care-unit", "SE2321009003-ONKO")
    assert standing.seals[0].delay_days == 21
    assert standing.seals[1].data_start is not None
    assert _aware(standing.seals[1].data_start) == dated.data_start
    assert (standing.holds_own, others.holds_own) == (False, True)
    assert [s.kind for s in others.seals] == ["record"]
    assert (standing.consents, standing.blocks, standing.emergency) == ((), (), None)


async def test_standing_says_what_the_person_asked_to_be_told_of_and_whether_they_can_be(
    store: ConsentStore, db: Database
) -> None:
    now = datetime.now(UTC)
    settings = table_of(NoticeSetting)
    # (The gateway seals the contacts: the store sees bytes.)
    rows: list[dict[str, Any]] = [
        {"patient_id": PATIENT, "kinds": ["access", "note"], "email": b"sealed", "webhook": None},
        {"patient_id": OTHER, "kinds": ["access"], "email": None, "webhook": None},
    ]
    async with db.connect() as conn:
        await conn.execute(insert(settings), [row | {"updated_at": now} for row in rows])
        await conn.commit()
    asked = await store.standing(PATIENT, DOC1, now)
    no_channel = await store.standing(OTHER, None, now)
    nothing = await store.standing("patient-c", None, now)

    assert (asked.notice_kinds, asked.notice_channel) == (frozenset({"access", "note"}), True)
    assert (no_channel.notice_kinds, no_channel.notice_channel) == (frozenset({"access"}), False)
    assert (nothing.notice_kinds, nothing.notice_channel) == (frozenset(), False)


def test_the_standing_statement_is_short_enough_for_the_driver_to_keep_it_parsed() -> None:
    """psycopg keeps the parse of a statement of at most 4,096 bytes
    (``psycopg._queries.MAX_CACHED_STATEMENT_LENGTH``); a longer one is parsed again on
    every read that makes it."""
    from consent.standing import _STANDING

    compiled = _STANDING.compile(dialect=postgresql.dialect())
    assert len(str(compiled).encode()) <= 4096
