"""The person index on both databases: opaque ids, encrypted identity numbers, migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fhir_profiles.identifiers import parse_person_identifier
from gateway.access.persons import PersonIndex
from store.db import Database, sync_url
from store.migrate import SchemaNotCurrent, check_current

pytestmark = pytest.mark.anyio

TOLVAN = parse_person_identifier("191212121212")


async def test_remember_and_resolve(database_url: str) -> None:
    db = Database(database_url)
    index = PersonIndex(db, "id-key-0123456789abcdef", "data-key-0123456789abcdef")
    try:
        patient_id = await index.remember(TOLVAN)
        assert patient_id == index.id_for(TOLVAN)
        assert await index.remember(TOLVAN) == patient_id  # idempotent
        assert await index.resolve(patient_id) == TOLVAN
        assert await index.resolve("unknown") is None
        assert await index.resolve("x" * 500) is None
    finally:
        await db.dispose()


async def test_identity_numbers_are_encrypted_at_rest(database_url: str) -> None:
    db = Database(database_url)
    index = PersonIndex(db, "id-key-0123456789abcdef", "data-key-0123456789abcdef")
    try:
        patient_id = await index.remember(TOLVAN)
    finally:
        await db.dispose()
    engine = create_engine(sync_url(database_url))
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM person")).one()
    engine.dispose()
    dumped = repr(tuple(row))
    assert TOLVAN.value not in dumped
    assert TOLVAN.value[2:] not in dumped
    assert patient_id in dumped
    # Another data key cannot read it back: resolve says unknown rather than guessing.
    db = Database(database_url)
    try:
        other = PersonIndex(db, "id-key-0123456789abcdef", "another-data-key-0123456789")
        assert await other.resolve(patient_id) is None
    finally:
        await db.dispose()


async def test_ids_depend_on_the_key_and_person() -> None:
    one = PersonIndex.__new__(PersonIndex)
    one._id_key = b"key-one"
    two = PersonIndex.__new__(PersonIndex)
    two._id_key = b"key-two"
    other = parse_person_identifier("199001011239")
    assert one.id_for(TOLVAN) != two.id_for(TOLVAN)
    assert one.id_for(TOLVAN) != one.id_for(other)
    assert len(one.id_for(TOLVAN)) == 32
    assert one.id_for(TOLVAN).isalnum()


async def test_concurrent_first_lookups_of_one_person(database_url: str) -> None:
    db = Database(database_url)
    index = PersonIndex(db, "id-key-0123456789abcdef", "data-key-0123456789abcdef")
    try:
        ids = await asyncio.gather(*(index.remember(TOLVAN) for _ in range(10)))
        assert len(set(ids)) == 1
    finally:
        await db.dispose()


def test_schema_is_current_after_migration(database_url: str) -> None:
    check_current(database_url)


def test_unmigrated_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaNotCurrent, match="samlad migrate"):
        check_current(f"sqlite:///{tmp_path / 'empty.db'}")


def test_url_forms() -> None:
    assert sync_url("postgresql://u@h/db").startswith("postgresql+psycopg://")
    assert make_url(sync_url("sqlite:///x.db")).get_backend_name() == "sqlite"
