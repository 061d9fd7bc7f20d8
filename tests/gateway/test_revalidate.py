"""Stale-while-revalidate: cached data past its freshness but within the stale bound is
served at once, marked ``revalidating``, while one refresh per person and source runs in
the background; beyond the bound (or with the bound 0) a read waits for its refresh.

The clock is moved with ``time_machine`` (the cache's sync times, the freshness decision
and the tokens all read it); the regions are the real ones on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import text

from gateway.collect.revalidate import RefreshLeases, Revalidator
from gateway.services import Services
from store.db import Database
from tests.conftest import IssuerKit
from tests.gateway.conftest import TEST_PERSON, Gateway, Region, running_gateway
from tests.gateway.test_overview import matches, source_status

pytestmark = pytest.mark.anyio

#: Past the default freshness (60 s), well within the default stale bound (1 h).
STALE = timedelta(seconds=90)


@contextmanager
def later(by: timedelta) -> Iterator[None]:
    """The wall clock ``by`` ahead (and running on)."""
    with time_machine.travel(datetime.now(UTC) + by, tick=True):
        yield


class Fetches:
    """Counts each source's Patient lookups (one per fetch of the person's data), letting
    them through only once ``gate`` is set."""

    def __init__(self, services: Services) -> None:
        self.by_source: dict[str, int] = {}
        self.gate = asyncio.Event()
        self.gate.set()
        for source in services.aggregator.sources:
            adapter: Any = source.adapter
            adapter.find_patient = self._counted(source.id, adapter.find_patient)

    def _counted(
        self, source_id: str, find: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def counted(*args: Any) -> Any:
            self.by_source[source_id] = self.by_source.get(source_id, 0) + 1
            await self.gate.wait()
            return await find(*args)

        return counted


def revalidator(gateway: Gateway) -> Revalidator:
    found = gateway.services.collector.revalidator
    assert found is not None
    return found


async def _everything(gateway: Gateway) -> dict[str, Any]:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ids(bundle: dict[str, Any], source_id: str | None = None) -> set[str]:
    return {
        r["id"] for r in matches(bundle) if source_id is None or r["id"].startswith(source_id + ".")
    }


def _statuses(bundle: dict[str, Any]) -> set[str]:
    return {s["status"] for s in source_status(bundle).values()}


async def _access_entries(gateway: Gateway) -> int:
    async with gateway.services.db.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM audit_entry"))).scalar_one())


async def test_stale_data_is_served_at_once_and_refreshed_once(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(
        database_url, issuer, regions, source_timeout=20, request_deadline=30
    ) as gateway:
        first = await _everything(gateway)
        fetches = Fetches(gateway.services)
        with later(STALE):
            fetches.gate.clear()  # every background refresh waits here until let go
            stale = await asyncio.gather(*(_everything(gateway) for _ in range(5)))
            logged = await _access_entries(gateway)
            fetches.gate.set()
            await revalidator(gateway).settled()
            refreshed_with = await _access_entries(gateway)
            after = await _everything(gateway)

    assert _statuses(first) == {"ok"}
    for bundle in stale:
        assert _statuses(bundle) == {"revalidating"}
        assert _ids(bundle) == _ids(first)
        for source_id, status in source_status(bundle).items():
            assert status["severity"] == "information"
            assert status["lastSync"] == source_status(first)[source_id]["lastSync"]
            assert status["resourceCount"] == source_status(first)[source_id]["resourceCount"]
    # One fetch per source for five stale reads at once, read for nobody.
    assert fetches.by_source == {region.source_id: 1 for region in regions.values()}
    assert refreshed_with == logged
    assert _statuses(after) == {"cached"}
    for source_id, status in source_status(after).items():
        assert status["lastSync"] > source_status(first)[source_id]["lastSync"]


async def test_a_failing_background_refresh_keeps_the_stale_data(
    database_url: str,
    issuer: IssuerKit,
    regions: dict[str, Region],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_gateway(
        database_url,
        issuer,
        regions,
        breaker_failure_threshold=100,
        retry_attempts=1,
        request_deadline=30,
        source_timeout=20,  # the first read's regions answer, however busy the machine
    ) as gateway:
        first = await _everything(gateway)
        syd = regions["syd"].source_id
        with later(STALE), caplog.at_level(logging.WARNING, "gateway.collect.revalidate"):
            regions["syd"].behaviour.fault = "error-500"
            stale = await _everything(gateway)
            await revalidator(gateway).settled()
            again = await _everything(gateway)
            await revalidator(gateway).settled()

    assert _statuses(stale) == {"revalidating"}
    status = source_status(again)
    assert status[syd]["status"] == "revalidating"  # still stale: asked again, in the background
    assert status[syd]["lastSync"] == source_status(first)[syd]["lastSync"]
    assert _ids(again, syd) == _ids(first, syd) != set()
    assert {s["status"] for k, s in status.items() if k != syd} == {"cached"}
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failures
    assert all(syd in line for line in failures)
    assert TEST_PERSON not in caplog.text


async def test_beyond_the_stale_bound_a_read_waits_for_its_refresh(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(
        # A busy machine's slow region must not turn the refresh waited for into a timeout.
        database_url,
        issuer,
        regions,
        cache_stale_seconds=600,
        request_deadline=30,
        source_timeout=20,
    ) as gateway:
        first = await _everything(gateway)
        with later(timedelta(seconds=601)):
            second = await _everything(gateway)
            running = revalidator(gateway).running

    assert _statuses(second) == {"ok"}
    assert running == 0  # nothing left to refresh in the background
    for source_id, status in source_status(second).items():
        assert status["lastSync"] > source_status(first)[source_id]["lastSync"]


async def test_a_stale_bound_of_0_refreshes_before_answering(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(
        database_url, issuer, regions, cache_stale_seconds=0, request_deadline=30, source_timeout=20
    ) as gateway:
        first = await _everything(gateway)
        with later(STALE):
            second = await _everything(gateway)
        assert gateway.services.collector.revalidator is None

    assert _statuses(second) == {"ok"}
    for source_id, status in source_status(second).items():
        assert status["lastSync"] > source_status(first)[source_id]["lastSync"]


async def test_one_process_of_all_holds_a_refresh_lease(db: Database) -> None:
    """Across processes (two lease holders on one database): the second is refused while
    the first holds the lease, and takes it once given back or expired."""
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    one, other = RefreshLeases(db, timedelta(seconds=30)), RefreshLeases(db, timedelta(seconds=30))

    assert await one.take("unified", "src", now)
    assert not await other.take("unified", "src", now + timedelta(seconds=29))
    assert await other.take("unified", "another-src", now)  # per source
    await one.give_back("unified", "src")
    assert await other.take("unified", "src", now + timedelta(seconds=1))
    # Left behind by a process that stopped: taken over once its time has passed.
    assert not await one.take("unified", "src", now + timedelta(seconds=30))
    assert await one.take("unified", "src", now + timedelta(seconds=32))


async def test_a_summary_from_data_being_revalidated_is_not_called_incomplete(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(
        database_url, issuer, regions, source_timeout=20, request_deadline=30
    ) as gateway:
        await _everything(gateway)
        patient_id = await gateway.patient_id()
        with later(STALE):
            response = await gateway.client.get(
                f"/fhir/Patient/{patient_id}/$summary", headers=gateway.citizen()
            )
            await revalidator(gateway).settled()
            regions["syd"].behaviour.fault = "error-500"
            with later(timedelta(hours=2)):  # past the stale bound: asked, and Syd fails
                failed = await gateway.client.get(
                    f"/fhir/Patient/{patient_id}/$summary", headers=gateway.citizen()
                )

    assert response.status_code == failed.status_code == 200, (response.text, failed.text)
    (composition,) = (e["resource"] for e in response.json()["entry"][:1])
    assert composition["resourceType"] == "Composition"
    assert "may be incomplete" not in composition["text"]["div"]
    (said,) = (e["resource"] for e in failed.json()["entry"][:1])
    assert "may be incomplete" in said["text"]["div"]
    assert "Region Syd" in said["text"]["div"]
