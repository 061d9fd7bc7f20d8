"""FhirR4Adapter asks for the next page before it hands the current one on, against a
real server on loopback: a sink's work overlaps the source's time to answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.base import FhirResource
from adapters.client import source_client
from adapters.fhir_r4 import FhirR4Adapter
from simregions.server import RunningServer, start_in_thread
from tests.adapters.adapter_fakes import make_config, resource

pytestmark = pytest.mark.anyio

PAGES = 4


class PagedSource:
    """``/fhir/Observation``: ``PAGES`` pages of two, linked by ``_page``; records when
    each page was asked for. Page ``hang`` (if set) is never answered."""

    def __init__(self) -> None:
        self.asked: dict[int, float] = {}
        self.hang: int | None = None
        self.base = ""

    async def observations(self, request: Request) -> Response:
        number = int(request.query_params.get("_page", "1"))
        self.asked[number] = time.monotonic()
        if number == self.hang:
            await asyncio.sleep(3600)
        link = [{"relation": "self", "url": str(request.url)}]
        if number < PAGES:
            link.append({"relation": "next", "url": f"{self.base}/Observation?_page={number + 1}"})
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": link,
            "entry": [
                {"resource": resource("Observation", f"o{number}-{n}"), "search": {"mode": "match"}}
                for n in (1, 2)
            ],
        }
        return Response(orjson.dumps(bundle), media_type="application/fhir+json")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[PagedSource, RunningServer]]:
    source = PagedSource()
    server = start_in_thread(Starlette(routes=[Route("/fhir/Observation", source.observations)]))
    source.base = server.url + "/fhir"
    try:
        yield source, server
    finally:
        server.stop()


def _client() -> httpx.AsyncClient:
    """A source's client as the gateway makes it: it says when a request has been sent."""
    return source_client(timeout=5.0, connect_timeout=5.0, max_connections=4)


class SlowSink:
    """Takes each page slowly, blocking the event loop as normalising does."""

    def __init__(self) -> None:
        self.taken: list[tuple[str, float, float]] = []

    def restart(self) -> None:
        self.taken.clear()

    def take(self, page: list[FhirResource]) -> None:
        started = time.monotonic()
        time.sleep(0.1)
        self.taken.append((str(page[0]["id"]), started, time.monotonic()))

    def expect(self, total: int) -> None:
        pass


async def test_the_next_page_is_asked_for_before_the_current_one_is_taken(
    served: tuple[PagedSource, RunningServer],
) -> None:
    source, _ = served
    source.asked.clear()
    source.hang = None
    sink = SlowSink()
    async with _client() as client:
        adapter = FhirR4Adapter(make_config(base_url=source.base, page_size=2), client)
        result = await adapter.search_all("Observation", "p1", sink=sink)
    assert result.pages == PAGES
    assert [first for first, _, _ in sink.taken] == [f"o{n}-1" for n in range(1, PAGES + 1)]
    for number, (_, _, taken) in enumerate(sink.taken[:-1], start=1):
        # Page n + 1 reached the source while page n was still being taken.
        assert source.asked[number + 1] < taken


async def test_a_search_cut_short_leaves_no_request_behind(
    served: tuple[PagedSource, RunningServer],
) -> None:
    source, _ = served
    source.hang = 3
    sink = SlowSink()
    before = set(asyncio.all_tasks())
    async with _client() as client:
        adapter = FhirR4Adapter(make_config(base_url=source.base, page_size=2), client)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await adapter.search_all("Observation", "p1", sink=sink)
        await asyncio.sleep(0.05)  # a cancelled task ends at its next step
        left: set[asyncio.Task[Any]] = set(asyncio.all_tasks()) - before
        left.discard(asyncio.current_task())  # type: ignore[arg-type]
    assert [first for first, _, _ in sink.taken] == ["o1-1", "o2-1"]
    assert all(task.done() for task in left)


class FailingSink(SlowSink):
    """Fails on the second page, as a sink whose store went away would."""

    def take(self, page: list[FhirResource]) -> None:
        if self.taken:
            raise RuntimeError("the sink failed")
        super().take(page)


async def test_a_failing_sink_leaves_no_request_behind(
    served: tuple[PagedSource, RunningServer],
) -> None:
    source, _ = served
    source.hang = 3  # asked for while page 2 is taken, never answered
    before = set(asyncio.all_tasks())
    sent: list[str] = []

    async def note(request: httpx.Request) -> None:
        sent.append(request.url.params.get("_page", "1"))

    async with httpx.AsyncClient(event_hooks={"request": [note]}) as client:
        adapter = FhirR4Adapter(make_config(base_url=source.base, page_size=2), client)
        with pytest.raises(RuntimeError, match="the sink failed"):
            await adapter.search_all("Observation", "p1", sink=FailingSink())
        left = set(asyncio.all_tasks()) - before - {asyncio.current_task()}
        assert sent == ["1", "2", "3"], "page 3 was asked for before page 2 was taken"
        assert all(task.done() for task in left), "no page request outlives its search"
