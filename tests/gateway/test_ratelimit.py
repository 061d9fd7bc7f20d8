"""Rate limits: a token bucket per principal, a stricter one per address for the rest.

Against the real app and the simulated regions, with the limiter's clock injected so that
refilling is a step of the clock, not a sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from joserfc.jwk import RSAKey
from sqlalchemy import create_engine, text
from starlette.requests import Request

from gateway.http.ratelimit import BucketTable, RateLimiter, address_key
from gateway.run.app import create_app
from gateway.run.workers import forwarded_options
from gateway.settings import ConfigError, load_settings
from simregions.server import bind_socket
from store.db import sync_url
from store.migrate import upgrade
from tests.conftest import IssuerKit
from tests.gateway.conftest import TEST_PERSON, Gateway, Region, gateway_settings

pytestmark = pytest.mark.anyio

OTHER_PERSON = "199001011239"
KINDS = ("citizen", "clinician", "integrator", "anonymous")
#: A read every principal may attempt: cheap, and never a 429 unless throttled.
READ = "/fhir/Patient/nobody"
SECRETS = {"id_key": "k" * 20, "data_key": "d" * 20, "audit_checkpoint_key": "a1" * 32}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the limits live in memory, whatever the database."""
    url = f"sqlite:///{tmp_path / 'samlad.db'}"
    upgrade(url)
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@asynccontextmanager
async def limited_gateway(
    database_url: str,
    issuer: IssuerKit,
    regions: dict[str, Region],
    clock: FakeClock,
    **limits: Any,
) -> AsyncIterator[tuple[Gateway, FastAPI]]:
    """The gateway with its limiter on ``clock``, called from 127.0.0.1."""
    settings = gateway_settings(database_url, issuer, regions, **limits)
    app = create_app(settings)
    app.state.rate_limiter = RateLimiter.from_settings(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield Gateway(client, issuer, regions, settings), app


@asynccontextmanager
async def client_at(app: FastAPI, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


def assert_throttled(response: httpx.Response, retry_after: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == str(retry_after)
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "throttled")
    assert "www-authenticate" not in response.headers


async def statuses(client: httpx.AsyncClient, count: int, **kwargs: Any) -> list[int]:
    return [(await client.get(READ, **kwargs)).status_code for _ in range(count)]


async def test_over_the_burst_is_429_with_retry_after_and_an_outcome(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], clock: FakeClock
) -> None:
    limits = {"rate_limit_integrator_per_second": 0.5, "rate_limit_integrator_burst": 3}
    async with limited_gateway(database_url, issuer, regions, clock, **limits) as (gateway, _):
        headers = gateway.integrator()
        assert await statuses(gateway.client, 3, headers=headers) == [404] * 3
        response = await gateway.client.get(READ, headers=headers)
        assert_throttled(response, retry_after=2)
        # Nothing about whose budget it was, or its size.
        for secret in ("journal-app", "SE2321009001-NORD", "0.5", "burst"):
            assert secret not in response.text
        # A new token of the same principal spends from the same bucket.
        assert_throttled(await gateway.client.get(READ, headers=gateway.integrator()), 2)


async def test_another_principal_is_not_affected(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], clock: FakeClock
) -> None:
    principals = KINDS[:3]
    limits = {f"rate_limit_{kind}_burst": 2 for kind in principals} | {
        f"rate_limit_{kind}_per_second": 1.0 for kind in principals
    }
    async with limited_gateway(database_url, issuer, regions, clock, **limits) as (gateway, _):
        tolvan = gateway.citizen()
        assert 429 not in await statuses(gateway.client, 2, headers=tolvan)
        assert_throttled(await gateway.client.get(READ, headers=tolvan), 1)
        others = [
            gateway.citizen(OTHER_PERSON),
            gateway.clinician(),
            gateway.clinician(hsa_id="SE2321009001-DOC2"),
            gateway.integrator(),
        ]
        for headers in others:
            assert 429 not in await statuses(gateway.client, 2, headers=headers)
        assert_throttled(await gateway.client.get(READ, headers=tolvan), 1)


async def test_tokens_refill_over_time_up_to_the_burst(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], clock: FakeClock
) -> None:
    limits = {"rate_limit_clinician_per_second": 0.5, "rate_limit_clinician_burst": 2}
    async with limited_gateway(database_url, issuer, regions, clock, **limits) as (gateway, _):
        headers = gateway.clinician()
        assert await statuses(gateway.client, 2, headers=headers) == [404, 404]
        assert_throttled(await gateway.client.get(READ, headers=headers), retry_after=2)
        clock.advance(1.0)
        assert_throttled(await gateway.client.get(READ, headers=headers), retry_after=1)
        clock.advance(1.0)
        assert await statuses(gateway.client, 2, headers=headers) == [404, 429]
        clock.advance(3600.0)  # a long pause fills the bucket, and no further
        assert await statuses(gateway.client, 3, headers=headers) == [404, 404, 429]


async def test_requests_without_a_valid_token_are_throttled_by_address(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], clock: FakeClock
) -> None:
    limits = {"rate_limit_anonymous_per_second": 0.25, "rate_limit_anonymous_burst": 3}
    stranger = RSAKey.generate_key(2048, parameters={"kid": issuer.key.kid})
    forged = issuer.token({"client_id": "x", "care_provider_hsa_id": "y"}, key=stranger)
    async with limited_gateway(database_url, issuer, regions, clock, **limits) as (gateway, app):
        attempts = [{}, gateway.auth("not-a-jwt"), gateway.auth(forged)]
        for headers in attempts:
            assert (await gateway.client.get(READ, headers=headers)).status_code == 401
        for headers in [*attempts, gateway.auth(gateway.issuer.token({"hsa_id": "only"}))]:
            assert_throttled(await gateway.client.get(READ, headers=headers), retry_after=4)
        # A valid token from the same address has its own budget ...
        assert (await gateway.client.get(READ, headers=gateway.citizen())).status_code == 404
        # ... and so does another address.
        async with client_at(app, "192.0.2.7") as elsewhere:
            assert (await elsewhere.get(READ)).status_code == 401
        clock.advance(4.0)
        assert (await gateway.client.get(READ)).status_code == 401


async def test_limits_can_be_switched_off(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], clock: FakeClock
) -> None:
    tight = {f"rate_limit_{kind}_burst": 1 for kind in KINDS}
    off = tight | {"rate_limit_enabled": False}
    async with limited_gateway(database_url, issuer, regions, clock, **off) as (gateway, _):
        assert 429 not in await statuses(gateway.client, 5, headers=gateway.integrator())
        assert 429 not in await statuses(gateway.client, 5)
    # A rate of 0 lifts the limit of one kind only.
    citizens_free = tight | {"rate_limit_citizen_per_second": 0}
    async with limited_gateway(database_url, issuer, regions, clock, **citizens_free) as (
        gateway,
        _,
    ):
        assert 429 not in await statuses(gateway.client, 5, headers=gateway.citizen())
        assert await statuses(gateway.client, 2, headers=gateway.clinician()) == [404, 429]
        assert await statuses(gateway.client, 2) == [401, 429]


async def test_discovery_and_health_stay_reachable(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], clock: FakeClock
) -> None:
    limits = {"rate_limit_anonymous_burst": 1, "rate_limit_citizen_burst": 1}
    async with limited_gateway(database_url, issuer, regions, clock, **limits) as (gateway, _):
        assert await statuses(gateway.client, 2) == [401, 429]
        headers = gateway.citizen()
        assert await statuses(gateway.client, 2, headers=headers) == [404, 429]
        paths = [
            "/fhir/metadata",
            "/fhir/.well-known/smart-configuration",
            "/.well-known/smart-configuration",
            "/healthz",
        ]
        for path in paths:
            for headers in ({}, gateway.auth("not-a-jwt"), gateway.citizen()):
                for _ in range(3):
                    response = await gateway.client.get(path, headers=headers)
                    assert response.status_code == 200, path


async def test_a_throttled_request_reads_and_logs_nothing(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], clock: FakeClock
) -> None:
    limits = {"rate_limit_citizen_per_second": 1.0, "rate_limit_citizen_burst": 2}
    async with limited_gateway(database_url, issuer, regions, clock, **limits) as (gateway, app):
        patient_id = await gateway.patient_id()  # a search, logged
        path = f"/fhir/Patient/{patient_id}"
        assert (await gateway.client.get(path, headers=gateway.citizen())).status_code == 200
        engine = create_engine(sync_url(database_url))
        try:
            with engine.connect() as conn:
                before = conn.execute(text("SELECT count(*) FROM audit_entry")).scalar_one()
            response = await gateway.client.get(path, headers=gateway.citizen())
            with engine.connect() as conn:
                after = conn.execute(text("SELECT count(*) FROM audit_entry")).scalar_one()
        finally:
            engine.dispose()
        assert_throttled(response, retry_after=1)
        assert before >= 2
        assert after == before
        assert TEST_PERSON not in response.text
        assert patient_id not in response.text
        # The citizen's bucket is known by the opaque patient id, not the personnummer.
        table = app.state.rate_limiter.table("citizen")
        assert len(table) == 1
        assert patient_id in table
        assert TEST_PERSON not in table


async def test_memory_is_bounded_by_max_clients(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], clock: FakeClock
) -> None:
    limits = {"rate_limit_max_clients": 2, "rate_limit_anonymous_burst": 1}
    async with limited_gateway(database_url, issuer, regions, clock, **limits) as (gateway, app):
        for doctor in ("SE2321009001-DOC1", "SE2321009001-DOC2", "SE2321009001-DOC3"):
            await gateway.client.get(READ, headers=gateway.clinician(hsa_id=doctor))
        table = app.state.rate_limiter.table("clinician")
        assert len(table) == 2
        assert "SE2321009001-DOC1" not in table
        for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            async with client_at(app, address) as client:
                await client.get(READ)
        assert len(app.state.rate_limiter.table("anonymous")) == 2


def test_least_recently_used_bucket_goes_first(clock: FakeClock) -> None:
    table = BucketTable(rate=1.0, burst=1, capacity=2, clock=clock)
    assert table.take("a") == table.take("b") == 0.0
    assert table.take("a") == pytest.approx(1.0)  # "a" is now the most recently used
    assert table.take("c") == 0.0
    assert len(table) == 2
    assert "b" not in table
    clock.advance(0.25)
    assert table.take("a") == pytest.approx(0.75)  # kept its state


def _request(host: str) -> Request:
    return Request({"type": "http", "method": "GET", "headers": [], "client": (host, 1)})


def test_address_keys() -> None:
    assert address_key(_request("198.51.100.4")) == "198.51.100.4"
    # An IPv6 host usually holds a whole /64: one budget for all of it.
    assert address_key(_request("2001:db8:1:2::5")) == "2001:db8:1:2::/64"
    assert address_key(_request("2001:db8:1:2:ffff::9")) == "2001:db8:1:2::/64"
    assert address_key(_request("2001:db8:1:3::5")) == "2001:db8:1:3::/64"
    assert address_key(_request("::ffff:198.51.100.4")) == "198.51.100.4"


def test_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings(None, **SECRETS)
    assert defaults.rate_limit_enabled
    assert defaults.rate_limit_anonymous_burst < defaults.rate_limit_citizen_burst
    monkeypatch.setenv("SAMLAD_RATE_LIMIT_CITIZEN_PER_SECOND", "0")
    monkeypatch.setenv("SAMLAD_RATE_LIMIT_ANONYMOUS_BURST", "7")
    settings = load_settings(None, **SECRETS)
    assert settings.rate_limit_citizen_per_second == 0
    assert settings.rate_limit_anonymous_burst == 7
    limiter = RateLimiter.from_settings(settings)
    assert limiter.table("citizen") is None
    assert limiter.table("anonymous") is not None
    monkeypatch.setenv("SAMLAD_RATE_LIMIT_ENABLED", "false")
    assert RateLimiter.from_settings(load_settings(None, **SECRETS)).table("anonymous") is None
    monkeypatch.setenv("SAMLAD_RATE_LIMIT_CLINICIAN_PER_SECOND", "-1")
    with pytest.raises(ConfigError, match="rate_limit_clinician_per_second"):
        load_settings(None, **SECRETS)


@asynccontextmanager
async def served_gateway(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway served by uvicorn on loopback, configured as ``samlad serve`` and the
    demo configure it (:func:`gateway.run.workers.forwarded_options`); a client of it."""
    settings = gateway_settings(database_url, issuer, regions, **overrides)
    config = uvicorn.Config(
        create_app(settings),
        log_level="warning",
        access_log=False,
        **forwarded_options(settings.trusted_proxies),
    )
    server = uvicorn.Server(config)
    sock = bind_socket()
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "the gateway did not start"
            await asyncio.sleep(0.01)
        port = sock.getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        server.should_exit = True
        await task
        sock.close()


BAD_TOKEN = {"Authorization": "Bearer not-a-token"}


async def test_forwarded_for_from_an_untrusted_peer_does_not_reset_the_budget(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    """By default no proxy is trusted, loopback included: a client that invents a new
    X-Forwarded-For on every request still spends its own address's budget."""
    limits = {"rate_limit_anonymous_per_second": 0.01, "rate_limit_anonymous_burst": 5}
    async with served_gateway(database_url, issuer, regions, **limits) as client:
        codes = [
            (
                await client.get(READ, headers=BAD_TOKEN | {"X-Forwarded-For": f"203.0.113.{n}"})
            ).status_code
            for n in range(40)
        ]
    assert codes[:5] == [401] * 5
    assert codes[5:] == [429] * 35


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    """Behind a configured proxy, each client it names has its own budget (and one
    naming itself the same spends the same one)."""
    limits = {"rate_limit_anonymous_per_second": 0.01, "rate_limit_anonymous_burst": 2}
    async with served_gateway(
        database_url, issuer, regions, trusted_proxies=["127.0.0.0/8"], **limits
    ) as client:
        distinct = [
            (
                await client.get(READ, headers=BAD_TOKEN | {"X-Forwarded-For": f"203.0.113.{n}"})
            ).status_code
            for n in range(10)
        ]
        same = [
            (
                await client.get(READ, headers=BAD_TOKEN | {"X-Forwarded-For": "198.51.100.7"})
            ).status_code
            for _ in range(3)
        ]
    assert distinct == [401] * 10
    assert same == [401, 401, 429]


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert load_settings(None, **SECRETS).trusted_proxies == []
    settings = load_settings(None, trusted_proxies=["10.0.0.0/8", "::1"], **SECRETS)
    assert settings.trusted_proxies == ["10.0.0.0/8", "::1"]
    for wrong in ("*", "proxy.example"):
        with pytest.raises(ConfigError, match="trusted_proxies"):
            load_settings(None, trusted_proxies=[wrong], **SECRETS)
