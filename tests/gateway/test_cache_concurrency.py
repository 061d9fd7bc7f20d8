"""Concurrent refreshes of one person and source: none aborts another, none is refused,
and the cache holds one consistent answer afterwards: the newest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.collect.cache import CHUNK_SIZE, RecordCache, Sealed
from gateway.run.demo import region_source
from store.db import Database, StoreUnavailable
from tests.conftest import IssuerKit
from tests.gateway.conftest import (
    CITIZEN_SCOPE,
    TEST_PERSON,
    Region,
    running_gateway,
)
from tests.gateway.test_clients import find_patient, free_port
from tests.gateway.test_overview import source_status
from tests.served import serve

pytestmark = pytest.mark.anyio

KEY = "test-data-key-0123456789"
ID_KEY = "test-id-key-0123456789"
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


async def test_concurrent_changes_all_merge(db: Database) -> None:
    """Twenty refreshes by last update at once, each adding a resource: each merges into
    what the one before it wrote, so none is lost."""
    cache = RecordCache(db, KEY, retention=timedelta(days=1))
    base = [_resource("Observation", n, 0) for n in range(2 * CHUNK_SIZE)]
    await cache.save(PERSON, SOURCE, {"Observation": base}, NOW, full=True)
    later = NOW + timedelta(minutes=1)

    await asyncio.gather(
        *(
            cache.save(
                PERSON,
                SOURCE,
                {"Observation": [_resource("Observation", 2 * CHUNK_SIZE + writer, writer)]},
                later,
                full=False,
            )
            for writer in range(WRITERS)
        )
    )

    loaded = (await cache.load(PERSON, [SOURCE], ["Observation"]))[SOURCE]["Observation"]
    assert len(loaded) == 2 * CHUNK_SIZE + WRITERS
    state = (await cache.states(PERSON, ["Observation"], later))[SOURCE]["Observation"]
    assert (state.synced_at, state.full_synced_at) == (later, NOW)


async def test_an_older_answer_never_replaces_a_newer_one(db: Database) -> None:
    """A refresh asked earlier but answered later (overtaken) leaves the newer data be,
    in full and by last update alike."""
    cache = RecordCache(db, KEY, retention=timedelta(days=1))
    newer = NOW + timedelta(seconds=10)
    await cache.store(PERSON, SOURCE, _sealed(cache, 2, list(SIZES)), newer)

    await cache.store(PERSON, SOURCE, _sealed(cache, 1, list(SIZES)), NOW)
    old_full = {"Observation": [_resource("Observation", 1, 1)]}
    returned = await cache.save(PERSON, SOURCE, old_full, NOW, full=True)
    changes = {"Condition": [_resource("Condition", 0, 1), _resource("Condition", 9999, 1)]}
    merged = await cache.save(PERSON, SOURCE, changes, NOW, full=False)

    assert await _consistent(cache, db) == {t: {"2"} for t in SIZES}
    states = (await cache.states(PERSON, SIZES, NOW))[SOURCE]
    assert {s.synced_at for s in states.values()} == {newer}
    assert returned == old_full  # the refresh's own answer
    assert [r["meta"]["versionId"] for r in merged["Condition"]] == ["2"] * SIZES["Condition"]
    # A newer answer still replaces an older one, and the same time counts as newer.
    await cache.store(PERSON, SOURCE, _sealed(cache, 3, ["Observation"]), newer)
    assert (await _consistent(cache, db))["Observation"] == {"3"}


# -- a collision with another transaction ----------------------------------------------


async def _waiting_for_lock_1(db: Database) -> None:
    """Until a transaction of this database waits for advisory lock 1."""
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 1"
        " AND NOT granted AND database = (SELECT oid FROM pg_database"
        " WHERE datname = current_database())"
    )
    async with db.connect() as conn:
        while True:
            if await conn.scalar(query):
                return
            await asyncio.sleep(0.01)


class Colliding:
    """A write whose first ``collisions`` runs end in a deadlock with another
    transaction, each run ending as its victim."""

    def __init__(self, db: Database, collisions: int) -> None:
        self.db = db
        self.collisions = collisions
        self.runs = 0
        self.others: list[asyncio.Task[None]] = []

    async def __call__(self, conn: AsyncConnection) -> str:
        self.runs += 1
        # The victim is whichever side looks for a deadlock first.
        await conn.exec_driver_sql("SET LOCAL deadlock_timeout = '10ms'")
        await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(1)")
        if self.runs <= self.collisions:
            holding = asyncio.Event()
            self.others.append(asyncio.create_task(self._other(holding)))
            await holding.wait()
            await _waiting_for_lock_1(self.db)
            await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(2)")
        return "written"

    async def _other(self, holding: asyncio.Event) -> None:
        """The other side: holds lock 2, then waits for lock 1."""
        async with self.db.engine.connect() as conn, conn.begin():
            await conn.exec_driver_sql("SET LOCAL deadlock_timeout = '1min'")
            await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(2)")
            holding.set()
            await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(1)")


@pytest.mark.postgres
async def test_a_deadlock_is_run_again_and_never_a_503(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        work = Colliding(db, 1)
        assert await db.write(work) == "written"
        await asyncio.gather(*work.others)  # the other side went ahead, once
    finally:
        await db.dispose()
    assert (work.runs, len(work.others)) == (2, 1)


@pytest.mark.postgres
async def test_a_second_deadlock_is_a_503(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        work = Colliding(db, 2)
        with pytest.raises(StoreUnavailable):
            await db.write(work)
        await asyncio.gather(*work.others)
    finally:
        await db.dispose()
    assert (work.runs, len(work.others)) == (2, 2)


# -- through the gateway -------------------------------------------------------------------


async def _one_answer_per_source(database_url: str, patient_id: str) -> dict[str, datetime]:
    """Asserts that each source's cached data is one refresh's: every type synced at one
    time, the chunks its sync row counts and no other, all of them readable; returns
    each source's sync time."""
    db = Database(database_url)
    try:
        async with db.connect() as conn:
            stored = dict(
                (
                    await conn.execute(
                        text(
                            "SELECT source_id || '|' || resource_type, count(*)"
                            " FROM record_cache WHERE patient_id = :p"
                            " GROUP BY source_id, resource_type"
                        ),
                        {"p": patient_id},
                    )
                ).all()
            )
            counted = dict(
                (
                    await conn.execute(
                        text(
                            "SELECT source_id || '|' || resource_type, chunks"
                            " FROM record_cache_sync WHERE patient_id = :p"
                        ),
                        {"p": patient_id},
                    )
                ).all()
            )
        assert stored == counted
        cache = RecordCache(db, KEY, retention=timedelta(days=1))
        types = {key.split("|")[1] for key in counted}
        states = await cache.states(patient_id, types)
        loaded = await cache.load(patient_id, list(states), types)
    finally:
        await db.dispose()
    assert {f"{s}|{t}" for s, by_type in loaded.items() for t in by_type} == set(counted)
    times = {s: {state.synced_at for state in by_type.values()} for s, by_type in states.items()}
    assert all(len(moments) == 1 for moments in times.values()), times
    return {source_id: moments.pop() for source_id, moments in times.items()}


async def test_concurrent_reads_of_one_person_are_all_answered(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    """Twenty reads of one person at once, each refreshing every source: none is
    refused, and the cache holds one answer per source afterwards, the newest."""
    async with running_gateway(
        database_url,
        issuer,
        regions,
        cache_fresh_seconds=0,
        # Time enough for twenty at once on a busy machine: what is measured is the store.
        request_deadline=300.0,
        source_timeout=120.0,
        source_max_concurrency=1000,
    ) as gateway:
        patient_id = await gateway.patient_id()
        headers = gateway.citizen()
        responses = await asyncio.gather(
            *(
                gateway.client.get(f"/fhir/Patient/{patient_id}/$everything", headers=headers)
                for _ in range(WRITERS)
            )
        )
        assert [r.status_code for r in responses] == [200] * WRITERS
        answers = [source_status(r.json()) for r in responses]

    synced = await _one_answer_per_source(database_url, patient_id)
    assert set(synced) == {region.source_id for region in regions.values()}
    for source_id, synced_at in synced.items():
        statuses = {answer[source_id]["status"] for answer in answers}
        assert statuses == {"ok"}
        newest = max(datetime.fromisoformat(answer[source_id]["lastSync"]) for answer in answers)
        assert newest == synced_at.replace(microsecond=synced_at.microsecond // 1000 * 1000)


@pytest.mark.postgres
async def test_reads_spread_over_two_gateway_processes_are_all_answered(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], tmp_path: Path
) -> None:
    """Two gateway processes on one database, twenty reads of one person at once spread
    over both, twice: none is refused, and the cache holds one answer per source."""
    ports = [free_port(), free_port()]
    configs = []
    for port in ports:
        document = {
            "gateway": {
                "id_key": ID_KEY,
                "data_key": KEY,
                "audit_checkpoint_key": "a1" * 32,
                "audit_checkpoint_file": str(tmp_path / f"checkpoints-{port}.jsonl"),
                "database_url": database_url,
                "port": port,
                "public_base_url": f"http://127.0.0.1:{port}",
                "cache_fresh_seconds": 0,
                # Time enough on a busy machine: what is measured is the store.
                "request_deadline": 300.0,
                "source_max_concurrency": 1000,
            },
            "issuers": [
                {
                    "issuer": issuer.config.issuer,
                    "audience": issuer.config.audience,
                    "jwks_file": str(issuer.config.jwks_file),
                }
            ],
            "sources": [
                region_source(r.spec, r.base_url) | {"timeout": 120.0} for r in regions.values()
            ],
        }
        config = tmp_path / f"gateway-{port}.toml"
        config.write_text(tomli_w.dumps(document))
        configs.append(config)
    bases = [f"http://127.0.0.1:{port}/fhir" for port in ports]
    token = issuer.citizen(TEST_PERSON, scope=CITIZEN_SCOPE)
    headers = {"Authorization": f"Bearer {token}"}
    with serve(configs[0], ports[0]) as one, serve(configs[1], ports[1]):
        patient_id = find_patient(bases[0], token)
        async with httpx.AsyncClient(timeout=600) as client:
            answers = []
            for _ in range(2):
                responses = await asyncio.gather(
                    *(
                        client.get(
                            f"{bases[n % 2]}/Patient/{patient_id}/$everything", headers=headers
                        )
                        for n in range(WRITERS)
                    )
                )
                assert [r.status_code for r in responses] == [200] * WRITERS
                answers += [source_status(r.json()) for r in responses]
        assert one.process.poll() is None

    synced = await _one_answer_per_source(database_url, patient_id)
    assert set(synced) == {region.source_id for region in regions.values()}
    for source_id, synced_at in synced.items():
        assert {answer[source_id]["status"] for answer in answers} == {"ok"}
        newest = max(datetime.fromisoformat(answer[source_id]["lastSync"]) for answer in answers)
        assert newest == synced_at.replace(microsecond=synced_at.microsecond // 1000 * 1000)
