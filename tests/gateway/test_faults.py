"""A slow or failing region never fails the overview: it is reported, the rest is served."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from gateway.run.demo import region_source
from simregions.app import SimRegionApp
from simregions.app import create_app as create_region_app
from simregions.behaviour import Behaviour
from simregions.server import serve_in_thread
from tests.conftest import IssuerKit
from tests.gateway.conftest import Gateway, Region, running_gateway
from tests.gateway.test_overview import matches, source_status

pytestmark = pytest.mark.anyio


async def _everything(gateway: Gateway) -> tuple[dict[str, object], float]:
    patient_id = await gateway.patient_id()
    started = time.perf_counter()
    response = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
    )
    assert response.status_code == 200
    return response.json(), time.perf_counter() - started


@pytest.mark.parametrize(
    ("fault", "status", "reason"),
    [
        ("down", "failed", "unavailable"),
        ("error-500", "failed", "unavailable"),
        ("unavailable-503", "failed", "unavailable"),
        ("malformed-json", "failed", "protocol"),
        ("invalid-fhir", "failed", "protocol"),
        ("next-loop", "failed", "protocol"),
    ],
)
async def test_one_failing_region(gateway: Gateway, fault: str, status: str, reason: str) -> None:
    patient_id = await gateway.patient_id()
    syd: Region = gateway.regions["syd"]
    syd.behaviour.fault = fault
    response = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
    )
    assert response.status_code == 200
    bundle = response.json()
    statuses = source_status(bundle)
    assert statuses["region-syd"]["status"] == status
    assert statuses["region-syd"]["reason"] == reason
    assert statuses["region-syd"]["severity"] == "warning"
    assert "answeredAt" not in statuses["region-syd"]
    assert statuses["region-nord"]["status"] == statuses["region-vast"]["status"] == "ok"
    sources = {r["meta"]["source"].split("#")[0] for r in matches(bundle)[1:]}
    assert sources == {"urn:samlad:source:region-nord", "urn:samlad:source:region-vast"}


async def test_slow_region_times_out_within_its_deadline(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    """Väst hangs far longer than any timeout: the answer comes all the same, at the
    sources' timeout, with Väst's status saying so. (The timeout leaves the healthy
    regions ample time however busy the machine; what is timed is only that the answer
    came long before the hang would have ended.)"""
    async with running_gateway(database_url, issuer, regions, source_timeout=3.0) as gateway:
        patient_id = await gateway.patient_id()
        regions["vast"].behaviour.fault = "timeout"
        started = time.perf_counter()
        response = await gateway.client.get(
            f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
        )
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed < 30.0  # the hang lasts an hour (TIMEOUT_HANG_SECONDS)
    statuses = source_status(response.json())
    assert statuses["region-vast"]["status"] == "timeout"
    assert statuses["region-nord"]["status"] == "ok"


async def test_stopped_region_is_reported_missing(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    """A configured region whose server is not running at all (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    stopped = region_source(regions["nord"].spec, f"http://127.0.0.1:{free_port}/fhir")
    stopped |= {"id": "region-stopped", "name": "Region Stoppad"}
    async with running_gateway(database_url, issuer, regions, extra_sources=[stopped]) as gateway:
        bundle, _ = await _everything(gateway)
    statuses = source_status(bundle)
    assert statuses["region-stopped"]["status"] == "failed"
    assert statuses["region-stopped"]["reason"] == "unavailable"
    assert statuses["region-nord"]["status"] == "ok"


# -- resilience: every fault within the deadline, with its reason ----------------------

#: The faulty source's share of a request in the tests below (seconds).
SOURCE_TIMEOUT = 1.0
#: What the gateway may add on top: its own work before and after the sources (merging,
#: rendering, the access log), which on a machine busy with other work takes seconds.
MARGIN = 4.0
#: The healthy sources' timeout and the request's deadline in those tests: room enough
#: for a healthy region to answer on a busy machine, so that only the fault is reported.
HEALTHY_TIMEOUT = 30.0


def with_faulty(
    regions: dict[str, Region], name: str, timeout: float = SOURCE_TIMEOUT
) -> tuple[dict[str, Region], dict[str, Any]]:
    """The healthy ``regions`` (their timeout set by the gateway's ``source_timeout``) and
    the one called ``name`` as a source of its own with ``timeout``."""
    faulty = regions[name]
    source = region_source(faulty.spec, faulty.base_url) | {"timeout": timeout}
    return {key: region for key, region in regions.items() if key != name}, source


#: The faulty source's timeout where every retry is to be seen: three attempts whatever
#: the machine's speed (on a busy one, three did not always fit in SOURCE_TIMEOUT); the
#: other faults show what the deadline cuts.
RETRIED = HEALTHY_TIMEOUT


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("fault", "status", "reason", "attempts", "share"),
    [
        ("timeout", "timeout", "timeout", 1, SOURCE_TIMEOUT),
        ("slow-drip", "timeout", "timeout", 1, SOURCE_TIMEOUT),
        ("reset", "failed", "unavailable", 3, RETRIED),
        ("down", "failed", "unavailable", 3, RETRIED),
        ("error-500", "failed", "unavailable", 3, RETRIED),
        ("unavailable-503", "failed", "unavailable", 3, RETRIED),
        # Retry-After: 1 does not fit in what is left of the 1 s deadline: no retry.
        ("rate-limit-429", "failed", "rate-limited", 1, SOURCE_TIMEOUT),
        ("malformed-json", "failed", "protocol", 1, SOURCE_TIMEOUT),
        ("invalid-fhir", "failed", "protocol", 1, SOURCE_TIMEOUT),
        ("next-loop", "failed", "protocol", 1, SOURCE_TIMEOUT),
    ],
)
async def test_fault_is_reported_within_the_deadline(
    database_url: str,
    issuer: IssuerKit,
    regions: dict[str, Region],
    fault: str,
    status: str,
    reason: str,
    attempts: int,
    share: float,
) -> None:
    healthy, vast_source = with_faulty(regions, "vast", share)
    async with running_gateway(
        database_url,
        issuer,
        healthy,
        source_timeout=HEALTHY_TIMEOUT,
        request_deadline=HEALTHY_TIMEOUT,
        extra_sources=[vast_source],
    ) as gateway:
        patient_id = await gateway.patient_id()
        regions["vast"].behaviour.fault = fault
        started = time.perf_counter()
        response = await gateway.client.get(
            f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
        )
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed < share + MARGIN
    bundle = response.json()
    statuses = source_status(bundle)
    vast = statuses["region-vast"]
    assert (vast["status"], vast["reason"], vast["attempts"]) == (status, reason, attempts)
    assert vast["elapsedMs"] <= (share + MARGIN) * 1000
    for other in ("region-nord", "region-syd"):
        assert statuses[other]["status"] == "ok"
        assert statuses[other]["attempts"] == 1
        assert "reason" not in statuses[other]
    sources = {r["meta"]["source"].split("#")[0] for r in matches(bundle)[1:]}
    assert sources == {"urn:samlad:source:region-nord", "urn:samlad:source:region-syd"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_connection_refused_is_reported_within_the_deadline(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    stopped = region_source(regions["nord"].spec, f"http://127.0.0.1:{free_port}/fhir")
    stopped |= {"id": "region-stopped", "name": "Region Stoppad", "timeout": SOURCE_TIMEOUT}
    async with running_gateway(
        database_url,
        issuer,
        regions,
        source_timeout=HEALTHY_TIMEOUT,
        extra_sources=[stopped],
        breaker_failure_threshold=100,  # see every retry; the breaker has its own test
    ) as gateway:
        bundle, elapsed = await _everything(gateway)
    assert elapsed < SOURCE_TIMEOUT + MARGIN
    statuses = source_status(bundle)
    assert statuses["region-stopped"]["reason"] == "unavailable"
    assert statuses["region-stopped"]["attempts"] == 3
    assert {statuses[f"region-{r}"]["status"] for r in ("nord", "vast", "syd")} == {"ok"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_rate_limited_call_is_retried_after_retry_after(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    """The Patient search is refused once (429, Retry-After: 1); the retry completes it."""
    async with running_gateway(
        database_url, issuer, regions, source_timeout=3.0, request_deadline=3.0
    ) as complete:
        healthy, _ = await _everything(complete)
    async with running_gateway(
        # Data the first gateway cached would spare the region the call under test.
        database_url,
        issuer,
        regions,
        source_timeout=3.0,
        request_deadline=3.0,
        cache_fresh_seconds=0,
    ) as gateway:
        patient_id = await gateway.patient_id()
        syd = regions["syd"].behaviour
        syd.fault_paths = "Patient/_search"
        syd.fault_rate = 0.5
        syd.seed = 1  # draws 0.13 (refused), then 0.85 (served)
        syd.fault = "rate-limit-429"
        started = time.perf_counter()
        response = await gateway.client.get(
            f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
        )
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert 1.0 <= elapsed < 3.0 + MARGIN
    bundle = response.json()
    statuses = source_status(bundle)
    assert statuses["region-syd"]["status"] == "ok"
    assert statuses["region-syd"]["attempts"] == 2
    assert "reason" not in statuses["region-syd"]
    assert len(matches(bundle)) == len(matches(healthy))


class CountingApp:
    """A region app that counts the FHIR requests for data that reach it (not the one for
    its CapabilityStatement, which the gateway asks once to learn what it shares)."""

    def __init__(self, inner: SimRegionApp) -> None:
        self.inner = inner
        self.fhir_requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if path.startswith("/fhir") and path != "/fhir/metadata":
            self.fhir_requests += 1
        await self.inner(scope, receive, send)


#: The open circuit's cool-down in the test below (seconds).
COOL_DOWN = 5.0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_open_circuit_spares_the_region_until_a_probe_closes_it(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    behaviour = Behaviour()
    counted = CountingApp(create_region_app(regions["nord"].spec, behaviour))
    with serve_in_thread(counted) as server:
        source = region_source(regions["nord"].spec, server.url + "/fhir")
        source |= {"id": "region-counted", "name": "Region Räknad", "timeout": HEALTHY_TIMEOUT}
        async with running_gateway(
            database_url,
            issuer,
            regions,
            source_timeout=HEALTHY_TIMEOUT,
            extra_sources=[source],
            retry_attempts=1,
            breaker_failure_threshold=2,
            # Longer than the two reads below take on a busy machine.
            breaker_cool_down=COOL_DOWN,
            cache_fresh_seconds=0,  # every read asks the region
        ) as gateway:
            patient_id = await gateway.patient_id()
            assert counted.fhir_requests == 1

            async def everything() -> dict[str, object]:
                response = await gateway.client.get(
                    f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
                )
                assert response.status_code == 200
                return source_status(response.json())["region-counted"]

            behaviour.fault = "error-500"
            for _ in range(2):  # two consecutive failures open the circuit
                status = await everything()
                assert (status["reason"], status["attempts"]) == ("unavailable", 1)
            assert counted.fhir_requests == 3

            opened = time.monotonic()
            for _ in range(2):
                status = await everything()
                assert (status["reason"], status["attempts"]) == ("circuit-open", 0)
                assert float(status["elapsedMs"]) < 500  # type: ignore[arg-type]
            assert counted.fhir_requests == 3  # not one request reached the region

            behaviour.fault = "none"
            await asyncio.sleep(COOL_DOWN + 0.05 - (time.monotonic() - opened))  # the rest
            status = await everything()
            assert status["status"] == "ok"
            assert counted.fhir_requests > 3
            status = await everything()
            assert status["status"] == "ok"


async def test_a_hanging_region_given_its_whole_time_opens_its_circuit(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    """A region given its whole timeout (the request has seconds more to spare: even with
    the most a busy machine keeps back for finishing, two fifths of the deadline, its share
    is not cut short) is to blame for timing out: it counts against it, and its circuit
    opens, so later reads do not wait for it."""
    behaviour = Behaviour()
    with serve_in_thread(create_region_app(regions["nord"].spec, behaviour)) as server:
        source = region_source(regions["nord"].spec, server.url + "/fhir")
        source |= {"id": "region-hanging", "name": "Region Hängande", "timeout": 2.0}
        async with running_gateway(
            database_url,
            issuer,
            regions,
            request_deadline=20.0,
            extra_sources=[source],
            retry_attempts=1,
            breaker_failure_threshold=2,
            breaker_cool_down=60.0,
            cache_fresh_seconds=0,
        ) as gateway:
            patient_id = await gateway.patient_id()
            behaviour.fault = "timeout"
            said = []
            for _ in range(3):
                response = await gateway.client.get(
                    f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
                )
                assert response.status_code == 200
                said.append(source_status(response.json())["region-hanging"]["reason"])
    assert said == ["timeout", "timeout", "circuit-open"]
