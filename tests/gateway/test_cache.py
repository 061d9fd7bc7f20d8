"""The cache of normalised data: fresh reads spare the sources, failures serve the last
sync, refreshes ask only for changes, data is encrypted at rest and expires, and consent
is decided on every read, after the cache."""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import text
from starlette.types import Receive, Scope, Send

from gateway.collect import spill
from gateway.collect.cache import CHUNK_SIZE, RecordCache
from gateway.memo import RECENT_SECONDS
from gateway.run.demo import region_source
from simregions.app import SimRegionApp
from simregions.behaviour import Behaviour
from simregions.data import build_region_data
from simregions.server import RunningServer, serve_in_thread
from simregions.store import RegionStore
from store.db import Database
from tests.conftest import IssuerKit
from tests.gateway.conftest import TEST_PERSON, Gateway, Region, running_gateway
from tests.gateway.consent_helpers import block, deactivate, grant
from tests.gateway.test_overview import matches, source_status

pytestmark = pytest.mark.anyio

KEY = "test-data-key-0123456789"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _observation(number: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"src.obs-{number}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/unified"},
        "valueQuantity": {"value": 130 + number, "unit": "g/L"},
    }


@pytest.fixture
async def cache(database_url: str) -> AsyncIterator[RecordCache]:
    db = Database(database_url)
    try:
        yield RecordCache(db, KEY, retention=timedelta(hours=24))
    finally:
        await db.dispose()


async def _raw_bodies(cache: RecordCache) -> list[bytes]:
    async with cache._db.session() as session:
        conn = await session.connection()
        return [bytes(row[0]) for row in await conn.execute(text("SELECT body FROM record_cache"))]


# -- the store ------------------------------------------------------------------------


async def test_round_trip_in_chunks_encrypted_at_rest(cache: RecordCache) -> None:
    resources = [_observation(n) for n in range(CHUNK_SIZE + 3)]
    patient = {"resourceType": "Patient", "id": "src.p1", "name": [{"family": "Tolvansson"}]}
    await cache.save(
        "unified", "src", {"Observation": resources, "Patient": [patient]}, NOW, full=True
    )

    loaded = await cache.load("unified", ["src"], ["Observation", "Patient"])
    assert loaded["src"]["Observation"] == resources  # every chunk, in order
    assert loaded["src"]["Patient"] == [patient]
    bodies = await _raw_bodies(cache)
    assert len(bodies) == 3  # two Observation chunks and the Patient
    for body in bodies:
        assert b"Tolvansson" not in body
        assert b"718-7" not in body
        assert b"Observation" not in body
    states = await cache.states("unified", ["Observation", "Patient", "Condition"], NOW)
    assert set(states["src"]) == {"Observation", "Patient"}
    assert states["src"]["Observation"].synced_at == NOW


async def test_changes_merge_into_the_cached_resources_by_id(cache: RecordCache) -> None:
    await cache.save(
        "unified", "src", {"Observation": [_observation(1), _observation(2)]}, NOW, full=True
    )
    changed = _observation(2) | {"status": "amended"}
    later = NOW + timedelta(minutes=5)
    merged = await cache.save(
        "unified", "src", {"Observation": [changed, _observation(3)]}, later, full=False
    )

    assert [(r["id"], r["status"]) for r in merged["Observation"]] == [
        ("src.obs-1", "final"),
        ("src.obs-2", "amended"),
        ("src.obs-3", "final"),
    ]
    assert (await cache.load("unified", ["src"], ["Observation"]))["src"] == merged
    state = (await cache.states("unified", ["Observation"], later))["src"]["Observation"]
    assert (state.synced_at, state.full_synced_at) == (later, NOW)


async def test_a_record_under_a_new_id_replaces_its_older_copy(cache: RecordCache) -> None:
    """A source that gave its data new ids (re-seeded, migrated): the changes carry the
    same records under new ids, and each record is kept once."""
    identified = _observation(1) | {"identifier": [{"system": "urn:lab", "value": "A-1"}]}
    timed = _observation(2) | {"effectiveDateTime": "2026-05-20T08:00:00+02:00"}
    await cache.save(
        "unified", "src", {"Observation": [identified, timed, _observation(3)]}, NOW, full=True
    )
    re_ided = identified | {"id": "src.new-1", "status": "amended"}
    same_content = timed | {"id": "src.new-2"}
    other = _observation(4) | {"id": "src.new-4", "effectiveDateTime": "2026-05-21T08:00:00Z"}
    later = NOW + timedelta(minutes=5)
    merged = await cache.save(
        "unified", "src", {"Observation": [re_ided, same_content, other]}, later, full=False
    )

    assert sorted((r["id"], r["status"]) for r in merged["Observation"]) == [
        ("src.new-1", "amended"),  # the same business identifier
        ("src.new-2", "final"),  # no identifier, the same fact (code, time, value)
        ("src.new-4", "final"),  # a new record
        ("src.obs-3", "final"),  # not in the changes: kept as it was
    ]
    assert (await cache.load("unified", ["src"], ["Observation"]))["src"] == merged


async def test_a_full_refresh_replaces_what_was_cached(cache: RecordCache) -> None:
    await cache.save(
        "unified", "src", {"Observation": [_observation(n) for n in range(600)]}, NOW, full=True
    )
    await cache.save("unified", "src", {"Observation": [_observation(7)]}, NOW, full=True)

    loaded = await cache.load("unified", ["src"], ["Observation"])
    assert [r["id"] for r in loaded["src"]["Observation"]] == ["src.obs-7"]
    assert len(await _raw_bodies(cache)) == 1  # the second chunk is gone too


async def test_the_owner_index_follows_each_refresh_of_the_record(cache: RecordCache) -> None:
    async def owned() -> dict[int, list[str]]:
        return {n: await cache.owners.owners("Observation", f"src.obs-{n}") for n in range(16)}

    def observations(numbers: range) -> dict[str, list[dict[str, Any]]]:
        return {"Observation": [_observation(n) for n in numbers]}

    await cache.save("unified", "src", observations(range(10)), NOW, full=True)
    await cache.save("other", "src", observations(range(3)), NOW, full=True)
    assert await owned() == {
        n: ["other", "unified"] if n < 3 else ["unified"] if n < 10 else [] for n in range(16)
    }

    later = NOW + timedelta(minutes=5)
    await cache.save("unified", "src", observations(range(5, 15)), later, full=True)
    assert await owned() == {
        n: ["other"] if n < 3 else ["unified"] if 5 <= n < 15 else [] for n in range(16)
    }

    changes = {"Observation": [_observation(15), _observation(6) | {"status": "amended"}]}
    await cache.save("unified", "src", changes, later + timedelta(minutes=5), full=False)
    assert await owned() == {
        n: ["other"] if n < 3 else ["unified"] if n >= 5 else [] for n in range(16)
    }

    await cache.forget("unified", "src")
    assert await owned() == {n: ["other"] if n < 3 else [] for n in range(16)}


async def test_an_id_met_twice_in_one_answer_is_indexed_once(cache: RecordCache) -> None:
    twice = [_observation(n) for n in (0, 0, 1)]
    await cache.save("unified", "src", {"Observation": twice}, NOW, full=True)
    again = [_observation(n) for n in (1, 1, 2, 2)]
    later = NOW + timedelta(minutes=1)
    await cache.save("unified", "src", {"Observation": again}, later, full=True)
    assert [await cache.owners.owners("Observation", f"src.obs-{n}") for n in range(3)] == [
        [],
        ["unified"],
        ["unified"],
    ]


async def test_a_large_answer_held_in_a_temporary_file_is_stored_whole(
    cache: RecordCache, monkeypatch: pytest.MonkeyPatch, made_files: list[IO[bytes]]
) -> None:
    """Chunks past the spill threshold wait in a temporary file: stored in order, the file
    closed once they are."""
    monkeypatch.setattr(spill, "SPILL_BYTES", 1000)
    resources = [_observation(n) for n in range(3 * CHUNK_SIZE + 7)]
    await cache.save("unified", "src", {"Observation": resources}, NOW, full=True)
    assert len(made_files) == 1
    assert made_files[0].closed
    loaded = await cache.load("unified", ["src"], ["Observation"])
    assert loaded["src"]["Observation"] == resources
    assert len(await _raw_bodies(cache)) == 4


async def test_a_chunk_moved_to_another_person_is_never_served(cache: RecordCache) -> None:
    await cache.save("unified", "src", {"Observation": [_observation(1)]}, NOW, full=True)
    await cache.save("other", "src", {"Observation": [_observation(9)]}, NOW, full=True)
    async with cache._db.session() as session:
        conn = await session.connection()
        body = (
            await conn.execute(text("SELECT body FROM record_cache WHERE patient_id = 'unified'"))
        ).scalar_one()
        await conn.execute(
            text("UPDATE record_cache SET body = :body WHERE patient_id = 'other'"),
            {"body": body},
        )
        await session.commit()

    assert await cache.load("other", ["src"], ["Observation"]) == {}
    assert (await cache.load("unified", ["src"], ["Observation"]))["src"]["Observation"]


def _sealed_as_before_hkdf(resources: list[dict[str, Any]], aad: bytes, nonce: bytes) -> bytes:
    """A chunk as written before keys were derived with HKDF (made here by hand): the
    nonce, then AES-GCM of the zlib-compressed JSON under SHA-256 of a label and the key."""
    key = hashlib.sha256(b"samlad-record-cache-v2:" + KEY.encode()).digest()
    return nonce + AESGCM(key).encrypt(nonce, zlib.compress(orjson.dumps(resources)), aad)


async def test_chunks_written_before_keys_were_derived_with_hkdf_are_still_read(
    cache: RecordCache,
) -> None:
    resources = [_observation(n) for n in range(CHUNK_SIZE + 3)]
    await cache.save("unified", "src", {"Observation": resources}, NOW, full=True)
    # Both chunks sealed again the earlier way; the first with a nonce that begins like a
    # chunk of the current format.
    earlier = [(0, resources[:CHUNK_SIZE], b"\x01" * 12), (1, resources[CHUNK_SIZE:], b"\x5a" * 12)]
    async with cache._db.session() as session:
        conn = await session.connection()
        for number, part, nonce in earlier:
            body = _sealed_as_before_hkdf(part, f"unified|src|Observation|{number}".encode(), nonce)
            await conn.execute(
                text("UPDATE record_cache SET body = :body WHERE chunk = :chunk"),
                {"body": body, "chunk": number},
            )
        await session.commit()

    assert (await cache.load("unified", ["src"], ["Observation"]))["src"]["Observation"] == (
        resources
    )
    async with cache.snapshot("unified") as snapshot:
        parts = [part async for part in snapshot.chunks("src", "Observation")]
    assert [resource for part in parts for resource in part] == resources
    changed = _observation(2) | {"status": "amended"}
    later = NOW + timedelta(minutes=5)
    merged = await cache.save("unified", "src", {"Observation": [changed]}, later, full=False)
    assert len(merged["Observation"]) == len(resources)
    assert [r["id"] for r in merged["Observation"] if r["status"] == "amended"] == ["src.obs-2"]
    assert all(body[:1] == b"\x01" for body in await _raw_bodies(cache))  # sealed afresh


async def test_data_past_its_retention_is_not_served_and_is_purged(cache: RecordCache) -> None:
    old = NOW - timedelta(hours=25)
    await cache.save("unified", "old", {"Observation": [_observation(1)]}, old, full=True)
    await cache.save("unified", "new", {"Observation": [_observation(2)]}, NOW, full=True)

    assert set(await cache.states("unified", ["Observation"], NOW)) == {"new"}
    assert await cache.purge(NOW) == 1
    assert set(await cache.load("unified", ["old", "new"], ["Observation"])) == {"new"}
    assert len(await _raw_bodies(cache)) == 1


async def test_concurrent_refreshes_of_one_person_both_succeed(cache: RecordCache) -> None:
    await asyncio.gather(
        *(
            cache.save("unified", "src", {"Observation": [_observation(n)]}, NOW, full=True)
            for n in range(8)
        )
    )
    loaded = await cache.load("unified", ["src"], ["Observation"])
    assert len(loaded["src"]["Observation"]) == 1


# -- the gateway --------------------------------------------------------------------------


async def _everything(gateway: Gateway, headers: dict[str, str] | None = None) -> dict[str, Any]:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$everything", headers=headers or gateway.citizen()
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ids(bundle: dict[str, Any], source_id: str | None = None) -> set[str]:
    return {
        r["id"] for r in matches(bundle) if source_id is None or r["id"].startswith(source_id + ".")
    }


async def test_fresh_cached_data_is_served_without_asking(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(database_url, issuer, regions, cache_fresh_seconds=600) as gateway:
        first = await _everything(gateway)
        for region in regions.values():
            region.behaviour.fault = "down"
        second = await _everything(gateway)

    assert _ids(second) == _ids(first)
    before, after = source_status(first), source_status(second)
    for source_id, status in after.items():
        assert before[source_id]["status"] == "ok"
        assert status["status"] == "cached"
        assert status["severity"] == "information"
        assert status["lastSync"] == before[source_id]["lastSync"]
        assert status["resourceCount"] == before[source_id]["resourceCount"]
        assert "answeredAt" not in status


async def test_a_failing_source_is_served_from_its_last_sync(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(
        # A breaker left closed lets the third read reach the healed region.
        database_url,
        issuer,
        regions,
        cache_fresh_seconds=0,
        breaker_failure_threshold=100,
    ) as gateway:
        first = await _everything(gateway)
        regions["syd"].behaviour.fault = "error-500"
        second = await _everything(gateway)
        regions["syd"].behaviour.fault = "none"
        third = await _everything(gateway)

    syd = regions["syd"].source_id
    status = source_status(second)
    assert status[syd]["status"] == "stale"
    assert status[syd]["severity"] == "warning"
    assert status[syd]["reason"] == "unavailable"
    assert status[syd]["lastSync"] == source_status(first)[syd]["lastSync"]
    assert _ids(second, syd) == _ids(first, syd) != set()
    assert {s["status"] for k, s in status.items() if k != syd} == {"ok"}
    assert source_status(third)[syd]["status"] == "ok"
    assert source_status(third)[syd]["lastSync"] > source_status(first)[syd]["lastSync"]


async def test_consent_is_decided_on_every_read_after_the_cache(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(database_url, issuer, regions, cache_fresh_seconds=600) as gateway:
        patient_id = await gateway.patient_id()
        clinician = gateway.clinician()
        consent = await grant(gateway, patient_id, "SE2321009001-NORD")
        first = await _everything(gateway, clinician)
        syd = regions["syd"]
        assert _ids(first, syd.source_id)

        await block(gateway, patient_id, syd.spec.care_provider_hsa_id)
        blocked = await _everything(gateway, clinician)
        assert _ids(blocked, syd.source_id) == set()
        assert syd.source_id not in source_status(blocked)
        assert source_status(blocked)[regions["nord"].source_id]["status"] == "cached"

        await deactivate(gateway, consent)
        refused = await gateway.client.get(
            f"/fhir/Patient/{patient_id}/$everything", headers=clinician
        )
        assert refused.status_code == 403
        assert "Tolvansson" not in refused.text


async def test_a_notification_makes_the_next_read_ask_the_source(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(database_url, issuer, regions, cache_fresh_seconds=600) as gateway:
        await _everything(gateway)
        syd = regions["syd"]
        response = await gateway.client.post(
            "/engagement/notifications",
            json={
                "identifier": {
                    "system": "http://electronichealth.se/identifier/personnummer",
                    "value": TEST_PERSON,
                }
            },
            headers={"Authorization": f"Bearer {syd.spec.token}-notify"},
        )
        assert response.status_code == 202
        after = source_status(await _everything(gateway))

    assert after[syd.source_id]["status"] == "ok"
    assert {s["status"] for k, s in after.items() if k != syd.source_id} == {"cached"}


class RecordingApp:
    """A region app that records the query string of every Observation search."""

    def __init__(self, inner: SimRegionApp) -> None:
        self.inner = inner
        self.observation_queries: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/Observation"):
            self.observation_queries.append(scope["query_string"].decode())
        await self.inner(scope, receive, send)


OwnRegion = tuple[RecordingApp, RegionStore, dict[str, Any]]


@pytest.fixture
def own_region(regions: dict[str, Region]) -> Iterator[OwnRegion]:
    """Region Nord's data in a store of its own (the tests change it), on its own port,
    and the gateway's source entry for it (``region-own``)."""
    spec = regions["nord"].spec
    store = RegionStore(build_region_data(spec))
    app = RecordingApp(SimRegionApp(spec, Behaviour(), store))
    server: RunningServer
    with serve_in_thread(app) as server:
        source = region_source(spec, server.url + "/fhir") | {"id": "region-own", "name": "Egen"}
        yield app, store, source


async def test_a_refresh_asks_only_for_changes_and_merges_them(
    database_url: str,
    issuer: IssuerKit,
    own_region: OwnRegion,
) -> None:
    app, store, source = own_region
    async with running_gateway(
        database_url, issuer, {}, extra_sources=[source], cache_fresh_seconds=0
    ) as gateway:
        first = await _everything(gateway)
        assert app.observation_queries
        assert "_lastUpdated" not in app.observation_queries[0]
        original = next(r for r in matches(first) if r["resourceType"] == "Observation")
        local_id = original["id"].removeprefix("region-own.")
        stored = store.read("Observation", local_id)
        assert stored is not None
        changed = orjson.loads(stored.body)
        changed["status"] = "amended"
        changed["meta"]["lastUpdated"] = datetime.now(UTC).isoformat()
        store.put(changed)
        app.observation_queries.clear()

        second = await _everything(gateway)

    assert all("_lastUpdated=gt" in query for query in app.observation_queries)
    assert _ids(second) == _ids(first)  # everything cached is still there
    amended = next(r for r in matches(second) if r["id"] == original["id"])
    assert amended["status"] == "amended"
    assert source_status(second)["region-own"]["status"] == "ok"
    assert source_status(second)["region-own"]["resourceCount"] == len(_ids(first, "region-own"))


async def test_a_full_refresh_is_made_when_the_last_one_is_too_old(
    database_url: str,
    issuer: IssuerKit,
    own_region: OwnRegion,
) -> None:
    app, _, source = own_region
    async with running_gateway(
        database_url,
        issuer,
        {},
        extra_sources=[source],
        cache_fresh_seconds=0,
        cache_full_refresh_seconds=0,
    ) as gateway:
        await _everything(gateway)
        await _everything(gateway)

    first_pages = [q for q in app.observation_queries if "_cursor" not in q]
    assert len(first_pages) == 2
    assert not any("_lastUpdated" in query for query in app.observation_queries)


async def test_data_that_cannot_be_decrypted_is_fetched_again(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(
        # Nothing decoded in memory: every read opens what is stored.
        database_url,
        issuer,
        regions,
        cache_fresh_seconds=600,
        memory_cache_resources=0,
    ) as gateway:
        first = await _everything(gateway)
        db = Database(database_url)
        async with db.session() as session:
            conn = await session.connection()
            await conn.execute(text("UPDATE record_cache SET body = :junk"), {"junk": b"x" * 40})
            await session.commit()
        await db.dispose()
        second = await _everything(gateway)
        third = await _everything(gateway)

    assert {s["status"] for s in source_status(second).values()} == {"ok"}
    assert _ids(second) == _ids(first)
    assert {s["status"] for s in source_status(third).values()} == {"cached"}


async def test_a_refresh_by_another_worker_is_seen_by_all(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    """Each worker's in-memory copy is keyed by sync time, so it never outlives a refresh
    by another worker for longer than that worker's sync rows are reused."""
    async with (
        running_gateway(database_url, issuer, regions, cache_fresh_seconds=600) as one,
        running_gateway(database_url, issuer, regions, cache_fresh_seconds=0) as other,
    ):
        await _everything(one)
        remembered = source_status(await _everything(one))
        refreshed = source_status(await _everything(other))
        await asyncio.sleep(RECENT_SECONDS)
        seen = source_status(await _everything(one))

    for source_id, status in seen.items():
        assert status["status"] == "cached"
        assert status["lastSync"] == refreshed[source_id]["lastSync"]
        assert status["lastSync"] > remembered[source_id]["lastSync"]
