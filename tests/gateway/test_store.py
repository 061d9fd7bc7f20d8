"""The person index on both databases: opaque ids, encrypted identity numbers, migrations."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fhir_profiles.identifiers import parse_person_identifier
from gateway.access.persons import PersonIndex
from store.db import SQLITE_CACHE_KIB, Database, sync_url
from store.migrate import SchemaNotCurrent, check_current
from store.tables import Person

pytestmark = pytest.mark.anyio

TOLVAN = parse_person_identifier("191212121212")
OTHER = parse_person_identifier("199001011239")
ID_KEY, DATA_KEY = "id-key-0123456789abcdef", "data-key-0123456789abcdef"


def _sealed_as_before_hkdf(person_id: str, value: str, nonce: bytes) -> bytes:
    """A person-index row as written before keys were derived with HKDF (made here by
    hand): the nonce, then AES-GCM under SHA-256 of a label and the data key."""
    key = hashlib.sha256(b"samlad-person-index:" + DATA_KEY.encode()).digest()
    return nonce + AESGCM(key).encrypt(nonce, value.encode(), person_id.encode())


async def _add_rows_as_before_hkdf(db: Database, index: PersonIndex) -> dict[str, bytes]:
    """One row each for TOLVAN and OTHER, the first with a nonce that begins like a row of
    the current format; returns the rows' ciphertexts by id."""
    rows = {}
    async with db.session() as session:
        for person, nonce in ((TOLVAN, b"\x01" * 12), (OTHER, b"\xa7" * 12)):
            person_id = index.id_for(person)
            rows[person_id] = _sealed_as_before_hkdf(person_id, person.value, nonce)
            session.add(
                Person(
                    id=person_id,
                    identifier_ciphertext=rows[person_id],
                    first_seen=datetime.now(UTC),
                )
            )
        await session.commit()
    return rows


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


async def _ciphertext(db: Database, person_id: str) -> bytes:
    async with db.session() as session:
        row = await session.get(Person, person_id)
    assert row is not None
    return bytes(row.identifier_ciphertext)


async def test_rows_written_before_keys_were_derived_with_hkdf_are_still_read(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        index = PersonIndex(db, ID_KEY, DATA_KEY)
        await _add_rows_as_before_hkdf(db, index)
        assert await index.resolve(index.id_for(TOLVAN)) == TOLVAN
        assert await index.resolve(index.id_for(OTHER)) == OTHER
        assert await index.remember(TOLVAN) == index.id_for(TOLVAN)
        assert await PersonIndex(db, ID_KEY, DATA_KEY).resolve(index.id_for(TOLVAN)) == TOLVAN
    finally:
        await db.dispose()


async def test_remembering_a_person_seals_their_earlier_row_again(database_url: str) -> None:
    db = Database(database_url)
    try:
        index = PersonIndex(db, ID_KEY, DATA_KEY)
        earlier = await _add_rows_as_before_hkdf(db, index)
        await index.remember(TOLVAN)
        await index.remember(TOLVAN)
        rows = {person_id: await _ciphertext(db, person_id) for person_id in earlier}
        tolvan, other = index.id_for(TOLVAN), index.id_for(OTHER)
        assert rows[other] == earlier[other]  # not remembered: left as it was
        assert rows[tolvan] != earlier[tolvan]
        assert rows[tolvan][:1] == b"\x01"
        assert len(rows[tolvan]) == len(earlier[tolvan]) + 1
        fresh = PersonIndex(db, ID_KEY, DATA_KEY)
        assert await fresh.resolve(tolvan) == TOLVAN
        assert await fresh.resolve(other) == OTHER
    finally:
        await db.dispose()


async def test_a_row_under_another_data_key_is_left_as_it_is(database_url: str) -> None:
    db = Database(database_url)
    try:
        patient_id = await PersonIndex(db, ID_KEY, "another-data-key-0123456789").remember(TOLVAN)
        before = await _ciphertext(db, patient_id)
        index = PersonIndex(db, ID_KEY, DATA_KEY)
        assert await index.remember(TOLVAN) == patient_id
        assert await index.resolve(patient_id) is None
        assert await _ciphertext(db, patient_id) == before
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


async def test_ids_never_change(tmp_path: Path) -> None:
    """Ids are in URLs, cursors and the access log: the same key and person give this id
    for good (an HMAC under ``id_key`` itself, no derived key)."""
    db = Database(f"sqlite:///{tmp_path / 'unused.db'}")
    try:
        assert PersonIndex(db, ID_KEY, DATA_KEY).id_for(TOLVAN) == (
            "7mxewe7776f5desl352qn5mrigblh33p"
        )
    finally:
        await db.dispose()


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


async def test_every_sqlite_connection_keeps_a_small_page_cache(tmp_path: Path) -> None:
    """Each pooled connection has a cache of its own, filled by a large record: each is
    held to SQLITE_CACHE_KIB, not SQLite's 2,000 KiB."""
    db = Database(f"sqlite:///{tmp_path / 'samlad.db'}")
    held = asyncio.Event()
    sizes: list[int] = []

    async def ask() -> None:
        async with db.connect() as conn:
            sizes.append(int((await conn.execute(text("PRAGMA cache_size"))).scalar_one()))
            if len(sizes) == 2:
                held.set()
            await held.wait()  # both at once: two connections

    try:
        await asyncio.gather(ask(), ask())
    finally:
        await db.dispose()
    assert sizes == [-SQLITE_CACHE_KIB, -SQLITE_CACHE_KIB]
