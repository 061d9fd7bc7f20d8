"""The request deadline counts from the request's arrival and keeps room to answer."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.config import SourceConfig
from adapters.fhir_r4 import FhirR4Adapter
from gateway.collect.cache import RecordCache
from gateway.collect.collector import Collector
from gateway.collect.deadline import (
    MAX_FINISH_SHARE,
    MIN_FINISH_SHARE,
    FinishTimes,
    RequestClock,
    request_arrival,
)
from gateway.collect.engagement import EngagementIndex
from gateway.collect.fanout import Aggregator
from gateway.sources import Source
from store.db import Database
from tests.gateway.test_merge_rules import patient
from tests.gateway.test_paged_collect import BASE, PATIENT_ID, PERSON, PagedSource, _answer

pytestmark = pytest.mark.anyio


def test_the_finishing_estimate_rises_at_once_and_falls_slowly() -> None:
    times = FinishTimes()
    assert times.reserve(5.0) == 5.0 * MIN_FINISH_SHARE, "a burst is not yet measured"
    times.add(1.0)
    assert times.estimate == pytest.approx(0.5)
    for _ in range(3):
        times.add(0.0)
    assert 0.4 < times.estimate < 0.5
    times.add(100.0)
    assert times.reserve(5.0) == 5.0 * MAX_FINISH_SHARE, "the sources keep most of it"


def _stuck_collector(db: Database, client: httpx.AsyncClient) -> Collector:
    """A collector with one source, and a deadline of 1 s."""
    config = SourceConfig(
        id="stuck", kind="fhir-r4", base_url=BASE, care_provider_hsa_id="SE2321000016-STCK"
    )
    return Collector(
        Aggregator([Source(config, FhirR4Adapter(config, client))], deadline=1.0),
        RecordCache(db, "test-data-key-0123456789", timedelta(hours=24)),
        EngagementIndex(db, timedelta(hours=1)),
        fresh_for=timedelta(minutes=1),
        full_every=timedelta(hours=1),
    )


def _never_answering() -> httpx.AsyncClient:
    """A source that knows the person but never answers a search."""
    answered = PagedSource(patient(), _answer()[:5])

    async def never_answers(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Observation"):
            await asyncio.sleep(60)
        return answered(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(never_answers))


async def test_time_before_the_sources_are_asked_counts_against_the_deadline(
    db: Database,
) -> None:
    """A request that spent half its deadline before asking its sources gives a source
    that never answers only the rest: the answer still comes within the deadline."""
    client = _never_answering()
    collector = _stuck_collector(db, client)
    outside = request_arrival()

    async def overview(request: Request) -> JSONResponse:
        await asyncio.sleep(0.5)  # e.g. waiting for the consent store
        load = request.query_params.get("load") != "no"
        collected = await collector.collect(PERSON, PATIENT_ID, ["Observation"], load=load)
        return JSONResponse({r.source_id: r.status.value for r in collected.reports})

    app = RequestClock(
        Starlette(routes=[Route("/overview", overview)]), lambda: collector.finish_times
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
        ) as caller:
            streamed = await caller.get("/overview?load=no")
            assert collector.finish_times.estimate == 0, "a streamed answer is no measure"
            started = time.monotonic()
            response = await caller.get("/overview")
            elapsed = time.monotonic() - started
    finally:
        await client.aclose()
    assert streamed.json() == response.json() == {"stuck": "timeout"}
    # Without counting from arrival: 0.5 s waiting, then the whole 1 s for the source.
    assert elapsed < 1.2, "the answer came about the deadline, not 0.5 s after it"
    assert collector.finish_times.estimate > 0, "the finishing time was measured"
    assert outside is None
    assert request_arrival() is None


async def test_the_time_finishing_lately_took_is_kept_back_from_the_sources(
    db: Database,
) -> None:
    client = _never_answering()
    collector = _stuck_collector(db, client)
    collector.finish_times.estimate = 0.3  # a busy worker: 0.35 s of the 1 s kept back
    try:
        started = time.monotonic()
        collected = await collector.collect(PERSON, PATIENT_ID, ["Observation"])
        elapsed = time.monotonic() - started
    finally:
        await client.aclose()
    assert [r.status.value for r in collected.reports] == ["timeout"]
    assert 0.55 < elapsed < 0.85, "the source had 0.65 s, not the whole deadline"
