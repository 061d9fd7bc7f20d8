"""A full answer is normalised and sealed page by page as it arrives: the same data, the
same report and the same refusals as an answer normalised whole, without ever holding
the whole answer."""

from __future__ import annotations

import asyncio
import copy
import gc
import zlib
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest

from adapters.base import FhirResource
from adapters.config import SourceConfig
from adapters.fhir_r4 import FhirR4Adapter
from consent.decision import AccessDecision
from fhir_profiles.identifiers import parse_person_identifier
from gateway.answer.streamed import open_stream
from gateway.collect.cache import CHUNK_SIZE, ChunkSealer, KeepBudget, RecordCache
from gateway.collect.collector import PATIENT, Collector
from gateway.collect.engagement import EngagementIndex
from gateway.collect.fanout import Aggregator
from gateway.collect.sealing import COMPRESS_BATCH
from gateway.merge.dedup import DuplicatePlan
from gateway.merge.record import merge_sources, normalise_source
from gateway.sources import Source, SourceRecord, SourceReport, SourceStatus
from store.db import Database
from tests.gateway.test_merge_rules import observation, patient

pytestmark = pytest.mark.anyio

PERSON = parse_person_identifier("191212121212")
PATIENT_ID = "unified-id"
BASE = "http://paged.test/fhir"
PAGE = 100


class PagedSource:
    """A FHIR source on a mock transport serving one Patient and its Observations in pages
    of :data:`PAGE`, counting the pages asked for."""

    def __init__(self, the_patient: FhirResource, observations: list[FhirResource]) -> None:
        self.patient = the_patient
        self.observations = observations
        self.pages = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        entries: list[FhirResource]
        link = []
        if request.url.path.endswith("/Patient/_search"):
            entries = [self.patient]
        elif request.url.path.endswith("/Observation"):
            self.pages += 1
            offset = int(request.url.params.get("_offset", "0"))
            entries = self.observations[offset : offset + PAGE]
            if offset + PAGE < len(self.observations):
                link = [{"relation": "next", "url": f"{BASE}/Observation?_offset={offset + PAGE}"}]
        else:
            entries = []
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": copy.deepcopy(r)} for r in entries],
            "link": link,
        }
        return httpx.Response(200, json=bundle)


async def _collect(
    db: Database,
    upstream: PagedSource,
    *,
    memory_budget: int,
    load: bool = True,
    key: str = "test-data-key-0123456789",
    fresh_for: timedelta = timedelta(minutes=1),
) -> tuple[Any, RecordCache]:
    config = SourceConfig(
        id="paged",
        kind="fhir-r4",
        base_url=BASE,
        care_provider_hsa_id="SE2321000016-PAGE",
        dialect={"page_size": PAGE},
    )
    cache = RecordCache(db, key, timedelta(hours=24))
    async with httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as client:
        collector = Collector(
            Aggregator([Source(config, FhirR4Adapter(config, client))], deadline=5.0),
            cache,
            EngagementIndex(db, timedelta(hours=1)),
            fresh_for=fresh_for,
            full_every=timedelta(hours=1),
            memory_budget=memory_budget,
        )
        collected = await collector.collect(PERSON, PATIENT_ID, ["Observation"], load=load)
    return collected, cache


def _whole(upstream: PagedSource) -> tuple[list[FhirResource], SourceReport]:
    """The same answer normalised whole, as an adapter without pages has it."""
    config = SourceConfig(
        id="paged", kind="fhir-r4", base_url=BASE, care_provider_hsa_id="SE2321000016-PAGE"
    )
    raws = copy.deepcopy(upstream.observations)
    report = SourceReport("paged", "paged", SourceStatus.OK, None, 0.0, len(raws))
    record = SourceRecord(Source(config, None), upstream.patient, raws)  # type: ignore[arg-type]
    normalised = normalise_source(record, report, PERSON, PATIENT_ID, frozenset({"Observation"}))
    assert normalised is not None
    return normalised.resources, report


def _without_fetch_time(resources: list[FhirResource]) -> list[FhirResource]:
    stripped = copy.deepcopy(resources)
    for resource in stripped:
        resource["meta"].pop("extension", None)
    return stripped


def _answer() -> list[FhirResource]:
    """Five pages and a bit; two resources that are not the patient's, one without an id."""
    observations = [observation(f"o{n}", valueQuantity={"value": n}) for n in range(520)]
    observations[7]["subject"] = {"reference": "Patient/someone-else"}
    observations[333]["subject"] = {"reference": "Patient/someone-else"}
    return observations


@pytest.mark.parametrize("memory_budget", [0, 10_000], ids=["sealed-only", "kept-in-memory"])
async def test_pages_become_what_the_whole_answer_becomes(db: Database, memory_budget: int) -> None:
    upstream = PagedSource(patient(), _answer())
    collected, cache = await _collect(db, upstream, memory_budget=memory_budget)
    expected, expected_report = _whole(upstream)

    assert upstream.pages == 6
    (source,) = collected.sources
    (report,) = collected.reports
    assert report.status is SourceStatus.OK
    assert report.resource_count == expected_report.resource_count == 518
    assert report.warnings == expected_report.warnings
    assert "dropped 2 resource(s): does not belong to the requested patient" in report.warnings
    assert _without_fetch_time(source.resources) == _without_fetch_time(expected)
    cached = await cache.load(PATIENT_ID, ["paged"], [PATIENT, "Observation"])
    assert cached["paged"]["Observation"] == source.resources
    assert cached["paged"][PATIENT] == [upstream.patient]


async def test_without_loading_only_the_patient_is_returned_and_all_is_cached(
    db: Database,
) -> None:
    upstream = PagedSource(patient(), _answer())
    collected, cache = await _collect(db, upstream, memory_budget=0, load=False)
    (source,) = collected.sources
    assert source.resources == []
    assert source.patient == upstream.patient
    states = await cache.states(PATIENT_ID, [PATIENT, "Observation"])
    assert set(states["paged"]) == {PATIENT, "Observation"}
    cached = await cache.load(PATIENT_ID, ["paged"], ["Observation"])
    assert len(cached["paged"]["Observation"]) == 518
    assert CHUNK_SIZE < 518  # so it was sealed in more than one chunk


async def test_a_patient_naming_another_person_too_keeps_nothing_of_the_pages(
    db: Database,
) -> None:
    both = patient()
    both["identifier"].append({"system": both["identifier"][0]["system"], "value": "199001011239"})
    upstream = PagedSource(both, _answer())
    collected, cache = await _collect(db, upstream, memory_budget=10_000)
    assert collected.sources == []
    (report,) = collected.reports
    assert report.status is SourceStatus.FAILED
    assert report.reason == "identity"
    assert report.resource_count == 0
    assert "199001011239" not in " ".join(report.warnings)
    assert await cache.states(PATIENT_ID, [PATIENT, "Observation"]) == {}


async def test_a_change_to_cached_data_that_does_not_decrypt_is_fetched_in_full_next(
    db: Database,
) -> None:
    upstream = PagedSource(patient(), _answer())
    await _collect(db, upstream, memory_budget=0)
    # Another key (or an earlier chunk format): the cached data cannot be read, and a
    # refresh asks only for changes, which cannot be added to it.
    key, fresh_for = "another-data-key-0123456789", timedelta(0)
    collected, cache = await _collect(db, upstream, memory_budget=0, key=key, fresh_for=fresh_for)
    assert collected.sources == []
    (report,) = collected.reports
    assert report.status is SourceStatus.FAILED
    assert "could not be read" in " ".join(report.warnings)
    assert await cache.states(PATIENT_ID, [PATIENT, "Observation"]) == {}

    collected, _ = await _collect(db, upstream, memory_budget=0, key=key, fresh_for=fresh_for)
    (report,) = collected.reports
    assert report.status is SourceStatus.OK
    assert report.resource_count == 518


def test_one_read_keeps_at_most_its_budget_in_memory_across_sources_and_types() -> None:
    budget = KeepBudget(600)
    seal = lambda number, part: orjson.dumps([number, len(part)])  # noqa: E731
    first, second = ChunkSealer(seal, budget, ref=str), ChunkSealer(seal, budget, ref=str)
    first.take([{"id": str(n)} for n in range(500)])
    second.take([{"id": str(n)} for n in range(200)])  # 100 would fit: none of it is kept
    assert budget.left == 100
    sealed = first.finish(), second.finish()
    assert [s.count for s in sealed] == [500, 200]
    assert sealed[0].resources is not None
    assert sealed[1].resources is None  # read back from the store instead
    assert [len(s.bodies) for s in sealed] == [1, 1]
    first.restart()  # a retried search starts over: what it kept is given back
    assert budget.left == 600


def test_a_source_saying_more_is_coming_than_may_be_kept_has_none_kept() -> None:
    """Its first pages are not held only to be given back when the rest comes."""
    budget = KeepBudget(600)
    seal = lambda number, part: orjson.dumps([number, len(part)])  # noqa: E731
    large, small = ChunkSealer(seal, budget, ref=str), ChunkSealer(seal, budget, ref=str)
    small.expect(600)  # would fit
    small.take([{"id": str(n)} for n in range(100)])
    assert (small.keeps, budget.left) == (True, 500)
    small.expect(700)  # a hint that it grew past what is left: what it kept is given back
    assert (small.keeps, budget.left) == (False, 600)
    large.expect(5000)
    large.take([{"id": str(n)} for n in range(200)])
    assert (large.keeps, budget.left) == (False, 600)
    sealed = large.finish()
    assert (sealed.resources, sealed.count) == (None, 200)


def test_chunks_compressed_page_by_page_hold_exactly_the_resources_in_order() -> None:
    """Pages of any size, across chunk boundaries and past the compressor's batch: each
    chunk opens to its resources, in order, as one whole array would; every resource is
    keyed for the owner index in the order taken."""
    sealed_chunks: list[tuple[int, bytes]] = []

    def seal(number: int, compressed: bytes) -> bytes:
        sealed_chunks.append((number, compressed))
        return compressed

    resources: list[FhirResource] = [
        {"resourceType": "Observation", "id": f"obs-{n}", "note": [{"text": "x" * (n % 700)}]}
        for n in range(2 * CHUNK_SIZE + 123)
    ]
    assert len(orjson.dumps(resources[:CHUNK_SIZE])) > 2 * COMPRESS_BATCH
    sealer = ChunkSealer(seal, None, ref=lambda i: f"ref:{i}")
    for start, size in ((0, 7), (7, 0), (7, 480), (487, 13), (500, 1), (501, 620), (1121, 2)):
        sealer.take(resources[start : start + size])
    sealed = sealer.finish()
    assert [number for number, _ in sealed_chunks] == [0, 1, 2]
    opened = [orjson.loads(zlib.decompress(body)) for body in sealed.bodies]
    assert opened == [
        resources[:CHUNK_SIZE],
        resources[CHUNK_SIZE : 2 * CHUNK_SIZE],
        resources[2 * CHUNK_SIZE :],
    ]
    assert sealed.count == len(resources)
    keys = [f"ref:obs-{n}" for n in range(len(resources))]
    assert list(sealed.refs)[7:487] == sorted(keys[7:487])  # each page in key order
    assert list(sealed.refs.merged()) == sorted(keys)  # all of them in key order
    pairs = list(zip(sealed.ids, sealed.refs, strict=True))
    assert len(pairs) == len(resources)
    assert dict(pairs) == {f"obs-{n}": key for n, key in enumerate(keys)}  # ids beside

    empty = ChunkSealer(seal, None, ref=str).finish()  # an empty type is one empty chunk
    assert [orjson.loads(zlib.decompress(body)) for body in empty.bodies] == [[]]


def _collector_of(
    db: Database,
    cache: RecordCache,
    handlers: Mapping[str, Callable[[httpx.Request], Any]],
    memory_budget: int = 0,
) -> tuple[Collector, list[httpx.AsyncClient]]:
    """A collector over one paged FHIR source per handler (by source id), each on a mock
    transport of its own; and the clients, to close."""
    sources, clients = [], []
    for source_id, handler in handlers.items():
        config = SourceConfig(
            id=source_id,
            kind="fhir-r4",
            base_url=BASE,
            care_provider_hsa_id=f"SE2321000016-{source_id.upper()}",
            dialect={"page_size": PAGE},
        )
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        clients.append(client)
        sources.append(Source(config, FhirR4Adapter(config, client)))
    collector = Collector(
        Aggregator(sources, deadline=5.0),
        cache,
        EngagementIndex(db, timedelta(hours=1)),
        fresh_for=timedelta(minutes=1),
        full_every=timedelta(hours=1),
        memory_budget=memory_budget,
    )
    return collector, clients


def _sealers_alive() -> int:
    """Chunk sealers in memory, reachable or not (each holds its answer's sealed chunks,
    ids and owner-index keys until they are let go)."""
    return sum(isinstance(o, ChunkSealer) for o in gc.get_objects())


async def test_a_source_is_stored_as_soon_as_it_has_answered_and_then_let_go(
    db: Database,
) -> None:
    """A fast source's answer is in the cache while a slow one is still being waited for:
    its write is off the request's critical path. Once stored, its sealed chunks, ids and
    keys leave memory at once, without waiting for the cyclic garbage collector (which
    the gateway runs seldom): a large record is not held a second time while its answer
    is read back and streamed."""
    slow_may_answer = asyncio.Event()
    fast = PagedSource(patient(), _answer())
    slow_answer = PagedSource(patient(), _answer()[:10])

    async def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Observation"):
            await slow_may_answer.wait()
        return slow_answer(request)

    cache = RecordCache(db, "test-data-key-0123456789", timedelta(hours=24))
    collector, clients = _collector_of(db, cache, {"fast": fast, "slow": slow})
    gc.collect()
    gc.disable()
    try:
        collecting = asyncio.create_task(
            collector.collect(PERSON, PATIENT_ID, ["Observation"], load=False)
        )
        for _ in range(200):
            if "fast" in await cache.states(PATIENT_ID, [PATIENT, "Observation"]):
                break
            await asyncio.sleep(0.01)
        assert not collecting.done()
        assert set(await cache.states(PATIENT_ID, [PATIENT, "Observation"])) == {"fast"}
        assert _sealers_alive() == 1  # the slow source's, still being filled
        slow_may_answer.set()
        collected = await collecting
        del collecting
        assert _sealers_alive() == 0
    finally:
        gc.enable()
        for client in clients:
            await client.aclose()
    assert [s.source.id for s in collected.sources] == ["fast", "slow"]
    # The slow one's ten include one of another patient's: dropped.
    assert {r.source_id: r.resource_count for r in collected.reports} == {"fast": 518, "slow": 9}


async def test_duplicate_digests_made_as_pages_arrive_plan_the_stream_as_the_merge_does(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sources reporting the same facts, paged in: the streamed answer, planned from
    the digests made as each page was normalised, is the in-memory merge."""
    cache = RecordCache(db, "test-data-key-0123456789", timedelta(hours=24))
    same = {s: PagedSource(patient(), _answer()) for s in ("first", "second")}
    collector, clients = _collector_of(db, cache, same, memory_budget=10_000)
    decision = AccessDecision(allowed=True, reason="self")
    try:
        collected = await collector.collect(PERSON, PATIENT_ID, ["Observation"], load=False)
        with monkeypatch.context() as patched:
            # Every digest is known: none is made while planning.
            patched.setattr(DuplicatePlan, "offer", None)
            stream = await open_stream(
                collector,
                collected,
                decision,
                PERSON,
                PATIENT_ID,
                ["Observation"],
                with_patient=True,
                matches=lambda _: True,
            )
        try:
            entries = [entry async for entry in stream.page(0, stream.total)]
        finally:
            await stream.aclose()
        loaded = await collector.collect(PERSON, PATIENT_ID, ["Observation"])  # the memo
    finally:
        for client in clients:
            await client.aclose()
    merged = merge_sources(loaded.sources, PERSON, PATIENT_ID)
    assert len(merged.provenance) > 500, "the second source's facts merged into the first's"
    assert [r for mode, r in entries if mode == "match"] == [merged.patient, *merged.resources]
    assert [r for mode, r in entries if mode == "include"] == merged.provenance


def test_digests_are_kept_in_step_with_the_resources_kept() -> None:
    budget = KeepBudget(300)
    seal = lambda number, part: orjson.dumps([number, len(part)])  # noqa: E731

    def page(start: int, size: int) -> tuple[list[FhirResource], list[bytes | None]]:
        resources: list[FhirResource] = [{"id": str(n)} for n in range(start, start + size)]
        return resources, [str(r["id"]).encode() for r in resources]

    sealer = ChunkSealer(seal, budget, ref=str)
    sealer.take(*page(0, 100))
    sealer.take(*page(100, 100))
    kept = sealer.finish()
    assert kept.resources is not None
    assert kept.digests == [str(r["id"]).encode() for r in kept.resources]
    with pytest.raises(ValueError, match="one digest per resource"):
        sealer.take([{"id": "x"}], [])

    sealer.restart()  # a retried search: what was kept, and its digests, start over
    sealer.take(*page(0, 50))
    sealer.take(page(50, 50)[0])  # a page without digests: none are kept from now on
    sealer.take(*page(100, 50))
    partly = sealer.finish()
    assert partly.resources is not None
    assert len(partly.resources) == 150
    assert partly.digests is None

    sealer.restart()
    sealer.take(*page(0, 200))
    assert sealer.keeps
    sealer.take(*page(200, 200))  # over the budget: nothing of this type is kept
    assert not sealer.keeps
    over = sealer.finish()
    assert (over.resources, over.digests, over.count) == (None, None, 400)
