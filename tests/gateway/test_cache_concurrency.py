"""Concurrent refreshes of one person and source: none aborts another, none is refused,
and the cache holds one consistent answer afterwards: the newest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from gateway.cache import CHUNK_SIZE, RecordCache, Sealed
from gateway.store.db import Database

pytestmark = pytest.mark.anyio

KEY = "test-data-key-0123456789"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PERSON, SOURCE = "unified", "src"
WRITERS = 20
#: Per type, resources in each writer's answer: several chunks of most types.
SIZES = {"Patient": 1, "Observation": 3 * CHUNK_SIZE + 17, "Condition": CHUNK_SIZE + 1}


def _resource(resource_type: str, number: int, writer: int) -> dict[str, Any]:
    return {
        "resourceType": resource_type,
        "id": f"{SOURCE}.{resource_type.lower()}-{number}",
        "meta": {"versionId": str(writer)},
    }


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


def _sealed(cache: RecordCache, writer: int, types: list[str]) -> dict[str, Sealed]:
    sealed = {}
    for resource_type in types:
        sealer = cache.sealer(PERSON, SOURCE, resource_type)
        sealer.take([_resource(resource_type, n, writer) for n in range(SIZES[resource_type])])
        sealed[resource_type] = sealer.finish()
    return sealed


async def _consistent(cache: RecordCache, db: Database) -> dict[str, set[str]]:
    """Each type's stored versions; asserts every chunk row belongs to its sync row."""
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT s.resource_type, s.chunks, count(c.chunk), max(c.chunk)"
                    " FROM record_cache_sync s LEFT JOIN record_cache c"
                    " ON c.patient_id = s.patient_id AND c.source_id = s.source_id"
                    " AND c.resource_type = s.resource_type"
                    " GROUP BY s.resource_type, s.chunks"
                )
            )
        ).all()
    for resource_type, chunks, count, last in rows:
        assert (count, last) == (chunks, chunks - 1), resource_type
    loaded = (await cache.load(PERSON, [SOURCE], list(SIZES)))[SOURCE]
    assert {t: len(r) for t, r in loaded.items()} == SIZES
    return {t: {r["meta"]["versionId"] for r in resources} for t, resources in loaded.items()}


async def test_concurrent_full_refreshes_leave_the_newest(db: Database) -> None:
    """Twenty writers of several chunks each, their types in different orders (as the
    sources' pages arrive), each answer newer than the writer's before."""
    cache = RecordCache(db, KEY, retention=timedelta(days=1))
    types = list(SIZES)
    answers = [
        _sealed(cache, writer, types[writer % 3 :] + types[: writer % 3])
        for writer in range(WRITERS)
    ]

    await asyncio.gather(
        *(
            cache.store(PERSON, SOURCE, sealed, NOW + timedelta(seconds=writer))
            for writer, sealed in enumerate(answers)
        )
    )

    newest = str(WRITERS - 1)
    assert await _consistent(cache, db) == {t: {newest} for t in SIZES}
    states = (await cache.states(PERSON, SIZES, NOW))[SOURCE]
    assert {s.synced_at for s in states.values()} == {NOW + timedelta(seconds=WRITERS - 1)}
