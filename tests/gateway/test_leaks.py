"""Every call to a source gives back its HTTP connection and its concurrency slot, on
every path: an answer, an error, a timeout, and cancellation at any step by the
caller or by the deadline; and a gateway that met a burst of cancelled reads serves
every source again by itself. Against real loopback servers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from aiohttp import ClientResponse

from adapters.base import FhirResource, SourceAdapter
from adapters.client import pool_state, source_client
from adapters.config import SourceConfig
from adapters.errors import SourceError
from adapters.fhir_r4 import FhirR4Adapter
from adapters.legacy_xml import LegacyXmlAdapter
from adapters.registry import build_auth
from fhir_profiles.identifiers import PersonIdentifier
from gateway.collect.pools import source_pools
from gateway.collect.resilience import CallBudget, ResiliencePolicy, ResilientAdapter, call_budget
from gateway.run.app import create_app
from gateway.run.demo import legacy_source, region_source
from gateway.services import Services
from gateway.sources import Source
from simregions.app import create_app as create_region_app
from simregions.behaviour import Behaviour
from simregions.legacy.app import create_legacy_app
from simregions.legacy.spec import OST
from simregions.regions import get_region
from simregions.server import RunningServer, serve_in_thread
from tests.conftest import IssuerKit
from tests.gateway.conftest import (
    TEST_PERSON,
    Gateway,
    Region,
    gateway_settings,
    running_gateway,
)
from tests.gateway.test_overview import source_status

pytestmark = pytest.mark.anyio

#: Connections and slots per source: small, so that a few lost ones would stop it.
SLOTS = 3
TOLVAN = PersonIdentifier(TEST_PERSON)
#: Several pages at Nord (10 a page), so pipelined next-page requests are cut too.
RESOURCE_TYPE = "MedicationRequest"


class _Sink:
    def __init__(self) -> None:
        self.resources: list[FhirResource] = []

    def restart(self) -> None:
        self.resources = []

    def take(self, page: list[FhirResource]) -> None:
        self.resources += page

    def expect(self, total: int) -> None:
        pass


@dataclass
class Wired:
    """One adapter, wrapped as the gateway wraps it, on its own small pool."""

    adapter: ResilientAdapter
    client: httpx.AsyncClient
    behaviour: Behaviour

    def assert_whole(self) -> None:
        state = pool_state(self.client)
        assert state is not None
        assert (state.in_use, state.waiting) == (0, 0), state
        assert self.adapter.slots_in_use == 0

    async def read(self, deadline: float = 30.0) -> int:
        """Find the person and read their Observations in full; the resources read."""
        budget = CallBudget(deadline=asyncio.get_running_loop().time() + deadline)
        with call_budget(budget):
            patient = await self.adapter.find_patient(TOLVAN)
            assert patient is not None
            sink = _Sink()
            if self.adapter.paged:
                await self.adapter.search_into(RESOURCE_TYPE, str(patient["id"]), sink)
                return len(sink.resources)
            return len(await self.adapter.search(RESOURCE_TYPE, str(patient["id"])))


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, tuple[RunningServer, Behaviour, SourceConfig]]]:
    """Nord (FHIR R4, 10 resources a page) and Öst (legacy XML), each on loopback."""
    nord_behaviour, ost_behaviour = Behaviour(), Behaviour()
    nord = get_region("nord")
    with (
        serve_in_thread(create_region_app(nord, nord_behaviour)) as nord_server,
        serve_in_thread(create_legacy_app(OST, ost_behaviour)) as ost_server,
    ):
        yield {
            "fhir-r4": (
                nord_server,
                nord_behaviour,
                SourceConfig.model_validate(region_source(nord, nord_server.url + "/fhir")),
            ),
            "legacy-xml": (
                ost_server,
                ost_behaviour,
                SourceConfig.model_validate(legacy_source(OST, ost_server.url + "/rivta")),
            ),
        }


@pytest.fixture(params=["fhir-r4", "legacy-xml"])
async def wired(
    request: pytest.FixtureRequest,
    servers: dict[str, tuple[RunningServer, Behaviour, SourceConfig]],
) -> AsyncIterator[Wired]:
    _, behaviour, config = servers[request.param]
    client = source_client(
        timeout=5.0, connect_timeout=5.0, max_connections=SLOTS, auth=build_auth(config)
    )
    inner: SourceAdapter = (
        FhirR4Adapter(config, client)
        if request.param == "fhir-r4"
        else LegacyXmlAdapter(config, client)
    )
    adapter = ResilientAdapter(
        inner, ResiliencePolicy(attempts=1, max_concurrency=SLOTS, failure_threshold=10**6)
    )
    try:
        yield Wired(adapter, client, behaviour)
    finally:
        behaviour.fault = "none"
        behaviour.latency_ms = 0
        await client.aclose()


async def settled(*clients: httpx.AsyncClient) -> None:
    """Let cancelled reads finish unwinding (a bounded wait for a condition, not a
    timing claim: a cancelled page fetched ahead ends within a few event-loop turns):
    until no connection of ``clients`` is in use or awaited."""
    for _ in range(1000):
        states = [pool_state(client) for client in clients]
        if all(s is not None and (s.in_use, s.waiting) == (0, 0) for s in states):
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0)


async def test_a_read_cancelled_at_any_step_gives_back_its_connection_and_slot(
    wired: Wired,
) -> None:
    """Cancel a full read after k event-loop turns, for every k until it completes on
    its own: whichever await it is cancelled at (waiting for a slot, a connection, a
    lock, the network, a pipelined next page, closing a response), the pool and the
    slots are whole afterwards and the source is read in full again."""
    expected = await wired.read()
    assert expected > 0
    completed = False
    for turns in range(2000):
        task = asyncio.create_task(wired.read())
        for _ in range(turns):
            await asyncio.sleep(0)
            if task.done():
                break
        if task.done():
            assert task.result() == expected
            completed = True
            break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settled(wired.client)
        wired.assert_whole()
    assert completed, "the read never finished within the turns tried"
    # As many concurrent reads as there are slots all get connections.
    assert await asyncio.gather(*(wired.read() for _ in range(SLOTS))) == [expected] * SLOTS
    await settled(wired.client)
    wired.assert_whole()


def _responses_alive() -> list[ClientResponse]:
    """The connection pool's responses still in memory, reachable or not (each holds
    what it read of its body)."""
    return [o for o in gc.get_objects() if isinstance(o, ClientResponse)]


async def test_a_read_lets_each_body_go_without_the_cyclic_collector(wired: Wired) -> None:
    """Once a read has a source's answer, nothing of the exchange that fetched it stays
    in memory waiting for the cyclic garbage collector, which the gateway runs seldom: a
    large record's pages are let go one by one as they are read, not all at its end."""
    await wired.read()
    await settled(wired.client)
    gc.collect()
    gc.disable()
    try:
        assert await wired.read() > 0
        await settled(wired.client)
        assert _responses_alive() == []
    finally:
        gc.enable()


@pytest.mark.parametrize("fault", ["timeout", "slow-drip", "reset", "error-500", "none"])
async def test_a_read_cut_off_by_its_deadline_gives_back_its_connection_and_slot(
    wired: Wired, fault: str
) -> None:
    """The source hangs before answering, drips its answer, drops the connection,
    fails or answers: many concurrent reads cut off by their deadline (or not) leave
    the pool and the slots whole, and the source is read again once it is healthy."""
    expected = await wired.read()
    wired.behaviour.fault = fault
    wired.behaviour.fault_rate = 0.5
    rng = random.Random(7)

    async def cut_short() -> None:
        with contextlib.suppress(SourceError):
            await wired.read(deadline=rng.uniform(0.0, 0.3))

    await asyncio.gather(*(cut_short() for _ in range(4 * SLOTS)))
    await settled(wired.client)
    wired.assert_whole()
    wired.behaviour.fault = "none"
    assert await wired.read() == expected
    await settled(wired.client)
    wired.assert_whole()


async def test_after_a_burst_of_cancelled_reads_every_source_is_ok_again_by_itself(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    """`$everything` reads, many at once, given up by the client at random moments while
    Väst hangs on a third of its requests, the rest cut off by their deadline:
    afterwards, with nothing restarted, every region answers the next read (``ok``) and
    every source's pool and slots are whole."""
    settings = gateway_settings(
        database_url,
        issuer,
        regions,
        source_max_concurrency=SLOTS,
        cache_fresh_seconds=0,
        rate_limit_enabled=False,
        request_deadline=4.0,
        source_timeout=4.0,
        # Väst's hangs that run their whole share are real failures and may open its
        # circuit, rightly; what is tested here is that nothing is lost, so it stays shut.
        breaker_failure_threshold=1000,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
        ) as client,
    ):
        gateway = Gateway(client, issuer, regions, settings)
        services: Services = app.state.services
        patient_id = await gateway.patient_id()
        headers = gateway.citizen()
        everything = f"/fhir/Patient/{patient_id}/$everything"
        regions["vast"].behaviour.fault = "timeout"
        regions["vast"].behaviour.fault_rate = 0.3
        for region in regions.values():
            region.behaviour.latency_ms = 20
        rng = random.Random(11)

        async def given_up() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(rng.uniform(0.0, 5.0)):
                    await client.get(everything, headers=headers)

        await asyncio.gather(*(given_up() for _ in range(30)))
        for region in regions.values():
            region.behaviour.fault = "none"
            region.behaviour.latency_ms = 0
        await settled(*services.source_clients.values())
        for pool in services.pools():
            in_use = (pool.connections_in_use, pool.requests_waiting, pool.slots_in_use)
            assert in_use == (0, 0, 0), pool
        response = await client.get(everything, headers=headers)
        assert response.status_code == 200, response.text
        statuses = {k: v["status"] for k, v in source_status(response.json()).items()}
        assert statuses == {region.source_id: "ok" for region in regions.values()}, source_status(
            response.json()
        )


async def test_a_stopped_gateway_is_collected_whole(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    """The process's first gateway freezes what is alive out of the cyclic collector;
    no later start freezes anything more, and a stopped gateway is freed whole, so that
    a process starting gateways one after another (a restart in place, these tests)
    does not keep each one, with every record it read, forever."""
    async with running_gateway(database_url, issuer, regions) as first:
        await first.patient_id()
    del first
    frozen = gc.get_freeze_count()
    assert frozen > 0
    async with running_gateway(database_url, issuer, regions) as second:
        await second.patient_id()
        app, services = weakref.ref(second.app), weakref.ref(second.services)
    del second
    gc.collect()
    assert gc.get_freeze_count() <= frozen
    assert (app(), services()) == (None, None)


def test_source_pools_report_connections_and_slots() -> None:
    """The pool report names every source, with zero for what it cannot see."""

    class _Bare:
        source_id = "bare"

    config = SourceConfig.model_validate(
        {"id": "bare", "kind": "fhir-r4", "base_url": "http://127.0.0.1:9/fhir"}
    )
    wrapped = ResilientAdapter(_Bare(), ResiliencePolicy(max_concurrency=5))  # type: ignore[arg-type]
    pools = source_pools([Source(config, wrapped)], {})
    assert [(p.source_id, p.connections_in_use, p.slots_in_use, p.slots) for p in pools] == [
        ("bare", 0, 0, 5)
    ]
