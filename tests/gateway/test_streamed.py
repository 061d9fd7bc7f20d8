"""``$everything``'s streamed merge: read twice from one snapshot of the cache, a chunk at
a time, it serves exactly what the in-memory merge serves, and holds still while the cache
changes under it."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from adapters.base import FhirResource
from adapters.config import SourceConfig
from consent.decision import AccessDecision
from consent.visibility import Visibility
from fhir_profiles.identifiers import parse_person_identifier
from fhir_profiles.record_status import CARE_UNIT_TAG
from gateway.answer.paging import snapshot_of
from gateway.answer.streamed import Match, RecordStream, open_stream
from gateway.collect import deadline
from gateway.collect.cache import CHUNK_SIZE, RecordCache
from gateway.collect.collector import PATIENT, Collected, Collector
from gateway.collect.engagement import EngagementIndex
from gateway.collect.fanout import Aggregator
from gateway.errors import ServiceUnavailable
from gateway.merge.record import (
    NormalisedSource,
    merge_sources,
    normalise_source,
)
from gateway.run.app import create_app
from gateway.sources import Source, SourceRecord, SourceReport, SourceStatus
from simregions.server import serve_in_thread
from store.db import Database, StoreUnavailable
from store.migrate import upgrade
from tests.conftest import IssuerKit
from tests.gateway.conftest import Gateway, Region, gateway_settings
from tests.gateway.test_merge_rules import NoAdapter, observation, patient

pytestmark = pytest.mark.anyio

PERSON = parse_person_identifier("191212121212")
PATIENT_ID = "unified-id"
TYPES = ("Observation", "Condition")
BLOCKED_UNIT = "SE2321000099-BLCK"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SELF = AccessDecision(allowed=True, reason="self")
SOURCES = {"region-a": "SE2321000016-PRVA", "region-b": "SE2321000017-PRVB"}


def _source(source_id: str) -> Source:
    config = SourceConfig(
        id=source_id,
        kind="fhir-r4",
        base_url="http://127.0.0.1:1/fhir",
        care_provider_hsa_id=SOURCES[source_id],
    )
    return Source(config, NoAdapter())


def _observation(local_id: str, n: int, *, unit: str | None = None) -> FhirResource:
    performer = {"identifier": {"system": "urn:oid:1.2.752.129.2.1.4.1", "value": unit}}
    return observation(
        local_id,
        effectiveDateTime="2025-01-01T00:00:00Z",
        valueQuantity={
            "value": n,
            "unit": "g/L",
            "system": "http://unitsofmeasure.org",
            "code": "g/L",
        },
        meta={"lastUpdated": f"2026-0{1 + n % 9}-01T00:00:00Z"},
        **({"performer": [performer]} if unit else {}),
    )


def _condition(local_id: str, n: int) -> FhirResource:
    return {
        "resourceType": "Condition",
        "id": local_id,
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": str(1000 + n)}]},
        "subject": {"reference": "Patient/local-p"},
        "onsetDateTime": "2024-03-01",
    }


def _normalised() -> list[NormalisedSource]:
    """Region A: 1,203 Observations (three chunks) and 5 Conditions. Region B: 700
    Observations, the first 300 the same facts as A's (merged), 50 more from a blocked
    care unit, and 5 Conditions, 2 the same as A's."""
    raw = {
        "region-a": [_observation(f"a{n}", n) for n in range(2 * CHUNK_SIZE + 203)]
        + [_condition(f"ac{n}", n) for n in range(5)],
        "region-b": [
            _observation(
                f"b{n}", n if n < 300 else 10_000 + n, unit=BLOCKED_UNIT if 300 <= n < 350 else None
            )
            for n in range(700)
        ]
        + [_condition(f"bc{n}", n + 3) for n in range(5)],
    }
    normalised = []
    for source_id, resources in raw.items():
        record = SourceRecord(_source(source_id), patient(), resources)
        report = SourceReport(source_id, source_id, SourceStatus.OK, NOW, 1.0, len(resources))
        found = normalise_source(record, report, PERSON, PATIENT_ID, frozenset(TYPES))
        assert found is not None
        assert not report.warnings
        normalised.append(found)
    return normalised


def _collector(
    db: Database, memory_budget: int, max_streams: int = 8
) -> tuple[Collector, RecordCache]:
    cache = RecordCache(db, "test-data-key-0123456789", timedelta(hours=24))
    collector = Collector(
        Aggregator([_source(s) for s in SOURCES], deadline=0.3),
        cache,
        EngagementIndex(db, timedelta(hours=1)),
        fresh_for=timedelta(minutes=1),
        full_every=timedelta(hours=1),
        memory_budget=memory_budget,
        max_streams=max_streams,
    )
    return collector, cache


async def _cached(cache: RecordCache, sources: list[NormalisedSource]) -> Collected:
    """``sources`` stored in the cache, and collected as ``collect(load=False)`` would."""
    for source in sources:
        by_type: dict[str, list[FhirResource]] = {t: [] for t in TYPES}
        for resource in source.resources:
            by_type[resource["resourceType"]].append(resource)
        await cache.save(
            PATIENT_ID, source.source.id, {PATIENT: [source.patient], **by_type}, NOW, full=True
        )
    return Collected(
        sources=[replace(s, resources=[]) for s in sources],
        reports=[
            SourceReport(s.source.id, s.source.id, SourceStatus.CACHED, None, 0.0) for s in sources
        ],
    )


async def _open(
    collector: Collector,
    collected: Collected,
    decision: AccessDecision = SELF,
    matches: Match = lambda _: True,
) -> RecordStream:
    """The whole record of the test person, as ``$everything`` opens it."""
    return await open_stream(
        collector,
        collected,
        decision,
        PERSON,
        PATIENT_ID,
        TYPES,
        with_patient=True,
        matches=matches,
    )


def _updated_this_summer(resource: FhirResource) -> bool:
    return str(resource.get("meta", {}).get("lastUpdated", "")) >= "2026-06"


async def _everything(stream: RecordStream, page_size: int) -> list[tuple[str, FhirResource]]:
    entries: list[tuple[str, FhirResource]] = []
    for offset in range(0, stream.total, page_size):
        entries += [entry async for entry in stream.page(offset, page_size)]
    return entries


@pytest.mark.parametrize("memory_budget", [0, 10_000], ids=["from-store", "from-memory"])
@pytest.mark.parametrize("matches", [lambda _: True, _updated_this_summer], ids=["all", "since"])
async def test_the_stream_serves_what_the_in_memory_merge_serves(
    db: Database, memory_budget: int, matches: Any
) -> None:
    collector, cache = _collector(db, memory_budget)
    sources = _normalised()
    collected = await _cached(cache, sources)
    decision = AccessDecision(
        allowed=True, reason="consent", hidden_units=frozenset({BLOCKED_UNIT})
    )
    visible = [
        replace(
            s,
            resources=Visibility(decision).visible(s.resources),
        )
        for s in sources
    ]
    merged = merge_sources(visible, PERSON, PATIENT_ID)
    expected = [merged.patient, *(r for r in merged.resources if matches(r))]
    assert len(merged.provenance) == 302  # 300 Observations and 2 Conditions merged

    stream = await _open(collector, collected, decision, matches=matches)
    try:
        assert stream.total == len(expected)
        assert stream.snapshot == snapshot_of(f"{r['resourceType']}/{r['id']}" for r in expected)
        assert stream.counts == Counter(r["resourceType"] for r in merged.resources)
        # What each source shows, never what is hidden of it (50 of B's are blocked).
        assert stream.shown == {"region-a": 2 * CHUNK_SIZE + 203 + 5, "region-b": 705 - 50}
        assert stream.shown == merged.per_source
        for page_size in (stream.total, random.Random(7).randint(1, 400), 1_000):
            entries = await _everything(stream, page_size)
            assert [r for mode, r in entries if mode == "match"] == expected
            provenance = {p["target"][0]["reference"]: p for p in merged.provenance}
            shown = {f"{r['resourceType']}/{r['id']}" for r in expected}
            assert [r for mode, r in entries if mode == "include"] == [
                provenance[ref]
                for ref in (f"{r['resourceType']}/{r['id']}" for r in expected)
                if ref in provenance and ref in shown
            ]
        served = [r for _, r in entries]
        assert not any(
            t.get("code") == BLOCKED_UNIT
            for r in served
            for t in (r.get("meta") or {}).get("tag", ())
            if t.get("system") == CARE_UNIT_TAG
        )
    finally:
        await stream.aclose()


async def test_a_refresh_during_the_stream_does_not_change_what_it_serves(db: Database) -> None:
    collector, cache = _collector(db, memory_budget=0)
    sources = _normalised()
    collected = await _cached(cache, sources)
    decision = AccessDecision(allowed=True, reason="self")
    stream = await _open(collector, collected, decision)
    try:
        first = [entry async for entry in stream.page(0, 10)]
        # Another request refreshes region A with a different answer meanwhile.
        await cache.save(
            PATIENT_ID,
            "region-a",
            {"Observation": sources[0].resources[:3], "Condition": []},
            NOW + timedelta(minutes=5),
            full=True,
        )
        entries = await _everything(stream, stream.total)
        assert entries[: len(first)] == first
        assert sum(1 for mode, _ in entries if mode == "match") == stream.total
        assert stream.total == 1 + 2 * CHUNK_SIZE + 203 + 5 + 700 - 300 + 5 - 2
    finally:
        await stream.aclose()
    # The next stream sees the refresh.
    later = await _open(collector, collected, decision)
    try:
        assert later.counts["Observation"] == 3 + 700 - 3  # A's three, B's copies merged
    finally:
        await later.aclose()


async def test_a_source_whose_cached_data_does_not_decrypt_is_left_out_whole(
    db: Database,
) -> None:
    collector, cache = _collector(db, memory_budget=0)
    collected = await _cached(cache, _normalised())
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE record_cache SET body = :body WHERE source_id = 'region-a'"
                " AND resource_type = 'Observation' AND chunk = 2"
            ),
            {"body": b"\x00" * 64},
        )
    stream = await _open(collector, collected)
    try:
        served = [r async for _, r in stream.page(0, stream.total)]
        assert len(served) == 1 + 700 + 5
        assert all("region-a" not in r["meta"].get("source", "") for r in served[1:])
        assert stream.counts == Counter({"Observation": 700, "Condition": 5})
        (report,) = [r for r in stream.reports if r.source_id == "region-a"]
        assert report.status is SourceStatus.FAILED
        assert report.resource_count == 0
        assert "could not be read" in " ".join(report.warnings)
    finally:
        await stream.aclose()
    states = await cache.states(PATIENT_ID, [PATIENT, *TYPES], now=NOW)
    assert set(states) == {"region-b"}  # removed, so it is fetched again


async def test_a_client_that_goes_away_mid_answer_gives_the_connection_back(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    """A real server; the client reads the first bytes of the answer and hangs up. The
    stream's snapshot connection (and its open transaction) is given back at once, not
    whenever the abandoned answer is garbage-collected."""
    app = create_app(gateway_settings(database_url, issuer, regions))
    with serve_in_thread(app) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            gateway = Gateway(client, issuer, regions, app.state.settings)
            patient_id = await gateway.patient_id()
            headers = gateway.citizen()
        pool = app.state.services.db.engine.pool
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            request = (
                f"GET /fhir/Patient/{patient_id}/$everything HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: {headers['Authorization']}\r\n\r\n"
            )
            writer.write(request.encode())
            await writer.drain()
            first = await reader.read(4096)
            assert first.startswith(b"HTTP/1.1 200")
            writer.transport.abort()  # gone, mid-answer
            await writer.wait_closed()
        for _ in range(100):
            if pool.checkedout() == 0:
                break
            await asyncio.sleep(0.05)
        assert pool.checkedout() == 0


async def test_a_database_failure_while_planning_is_a_503(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'samlad.db'}"
    upgrade(url)
    database = Database(url)
    try:
        collector, cache = _collector(database, memory_budget=0)
        collected = await _cached(cache, _normalised())
        async with database.engine.begin() as conn:
            await conn.execute(text("DROP TABLE record_cache"))  # the chunks are gone
        with pytest.raises(StoreUnavailable):
            await _open(collector, collected)
        assert database.engine.pool.checkedout() == 0
    finally:
        await database.dispose()


async def test_streams_open_at_once_are_bounded_and_the_rest_refused_in_time(
    db: Database,
) -> None:
    collector, cache = _collector(db, memory_budget=0, max_streams=2)
    collected = await _cached(cache, _normalised())

    async def opened() -> RecordStream:
        return await _open(collector, collected)

    first, second = await opened(), await opened()
    try:
        with deadline.arrived(), pytest.raises(ServiceUnavailable, match="too many large answers"):
            await opened()  # waits the request deadline (0.3 s) for a turn, then 503
    finally:
        await first.aclose()
    third = await opened()  # a turn given back is taken at once
    await second.aclose()
    await third.aclose()
    assert db.engine.pool.checkedout() == 0


async def test_a_request_whose_deadline_has_passed_waits_for_no_stream_turn(
    db: Database,
) -> None:
    """The wait for a turn counts from the request's arrival: a request that arrived a
    deadline ago is refused at once, even if a turn is given back a moment later."""
    collector, cache = _collector(db, memory_budget=0, max_streams=1)
    collected = await _cached(cache, _normalised())
    first = await _open(collector, collected)
    token = deadline._current.set(deadline.Arrival(time.monotonic() - 10.0))
    try:
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(first.aclose()))
        with pytest.raises(ServiceUnavailable, match="too many large answers"):
            await _open(collector, collected)
    finally:
        deadline._current.reset(token)
        await first.aclose()
    assert db.engine.pool.checkedout() == 0


async def test_a_read_outside_a_request_waits_for_a_stream_turn_however_long(
    db: Database,
) -> None:
    """A Bulk export's read is nobody's request: it waits past the request deadline for
    a turn at reading the cache, rather than being refused."""
    collector, cache = _collector(db, memory_budget=0, max_streams=1)
    collected = await _cached(cache, _normalised())
    first = await _open(collector, collected)
    waiting = asyncio.create_task(_open(collector, collected))
    try:
        await asyncio.sleep(0.6)  # twice the request deadline
        assert not waiting.done()
    finally:
        await first.aclose()
    second = await waiting
    await second.aclose()
    assert db.engine.pool.checkedout() == 0
