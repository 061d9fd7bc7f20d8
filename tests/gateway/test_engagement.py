"""The engagement index: ask only the sources that hold data, and never hide one for long."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from gateway.collect.engagement import EngagementIndex
from gateway.memo import RECENT_SECONDS
from gateway.sources import SourceReport, SourceStatus
from store.db import Database
from tests.conftest import IssuerKit
from tests.gateway.conftest import Gateway, Region, running_gateway
from tests.gateway.test_overview import source_status

pytestmark = pytest.mark.anyio

PNR = "http://electronichealth.se/identifier/personnummer"
NORD_ONLY = "198306093504"  # lives in Region Nord only


async def statuses(gateway: Gateway, patient_id: str) -> dict[str, str]:
    response = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen(NORD_ONLY)
    )
    assert response.status_code == 200
    return {k: v["status"] for k, v in source_status(response.json()).items()}


async def test_sources_without_data_are_skipped_after_the_first_look(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(database_url, issuer, regions) as gateway:
        await check_skipping(gateway)


async def check_skipping(gateway: Gateway) -> None:
    # The first look (the Patient search) asks every source.
    response = await gateway.client.post(
        "/fhir/Patient/_search",
        data={"identifier": f"{PNR}|{NORD_ONLY}"},
        headers=gateway.citizen(NORD_ONLY),
    )
    first = {k: v["status"] for k, v in source_status(response.json()).items()}
    assert first == {"region-nord": "ok", "region-vast": "no-data", "region-syd": "no-data"}
    patient_id = await gateway.patient_id(NORD_ONLY)
    # Were Väst or Syd asked now, they would fail: they are not.
    for region in ("vast", "syd"):
        gateway.regions[region].behaviour.fault = "down"
    assert await statuses(gateway, patient_id) == {
        "region-nord": "ok",
        "region-vast": "not-asked",
        "region-syd": "not-asked",
    }


async def test_a_source_announcing_new_data_is_asked_at_once(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id(NORD_ONLY)
    await statuses(gateway, patient_id)
    syd = gateway.regions["syd"].spec
    body = {"identifier": {"system": PNR, "value": NORD_ONLY}}
    refused = await gateway.client.post(
        "/engagement/notifications", json=body, headers={"Authorization": "Bearer wrong"}
    )
    assert refused.status_code == 401
    assert NORD_ONLY not in refused.text
    bad = await gateway.client.post(
        "/engagement/notifications",
        json={"identifier": {"system": PNR, "value": "198306093505"}},
        headers={"Authorization": f"Bearer {syd.token}-notify"},
    )
    assert bad.status_code == 400
    assert "198306093505" not in bad.text
    announced = await gateway.client.post(
        "/engagement/notifications",
        json=body,
        headers={"Authorization": f"Bearer {syd.token}-notify"},
    )
    assert announced.status_code == 202
    after = await statuses(gateway, patient_id)
    assert after["region-syd"] == "no-data", "asked again (and it still has nothing)"
    assert after["region-vast"] == "not-asked"


async def test_every_source_is_asked_again_within_the_bound(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id(NORD_ONLY)
    assert (await statuses(gateway, patient_id))["region-vast"] == "not-asked"
    # The wall clock moved to just before the bound, then just past it.
    bound = datetime.now(UTC) + timedelta(seconds=gateway.settings.engagement_full_check_seconds)
    with time_machine.travel(bound - timedelta(minutes=1), tick=True):
        assert (await statuses(gateway, patient_id))["region-vast"] == "not-asked"
    # A read that asked no source (Nord's data served stale while it is refreshed) keeps
    # its plan for RECENT_SECONDS of the monotonic clock, which time-machine leaves
    # alone: waited out (waiting longer only makes it surer).
    await asyncio.sleep(RECENT_SECONDS + 0.1)
    with time_machine.travel(bound + timedelta(minutes=1), tick=True):
        assert (await statuses(gateway, patient_id))["region-vast"] == "no-data"


async def test_a_failing_source_is_never_learned_as_empty(gateway: Gateway) -> None:
    gateway.regions["vast"].behaviour.fault = "error-500"
    patient_id = await gateway.patient_id(NORD_ONLY)  # the first look: Väst fails
    gateway.regions["vast"].behaviour.fault = "none"
    after = await statuses(gateway, patient_id)
    assert after["region-vast"] == "no-data", "unknown, so asked again"
    # The first full check was incomplete, so this was a full check too; now it is done.
    assert after["region-syd"] == "no-data"
    settled = await statuses(gateway, patient_id)
    assert settled["region-vast"] == settled["region-syd"] == "not-asked"


async def test_requests_learning_about_one_new_person_at_once_all_succeed(
    database_url: str,
) -> None:
    db = Database(database_url)
    index = EngagementIndex(db, timedelta(hours=1))
    reports = [
        SourceReport(f"source-{n}", f"Source {n}", status, None, 1.0)
        for n, status in enumerate([SourceStatus.OK, SourceStatus.NO_DATA, SourceStatus.OK])
    ]
    try:
        await asyncio.gather(*(index.learn("new-person", reports, full=True) for _ in range(8)))
        plan = await index.plan("new-person")
    finally:
        await db.dispose()
    assert plan.skip == {"source-1"}
    assert not plan.full


async def test_a_read_that_learns_nothing_keeps_the_plan_it_was_made_with(
    database_url: str,
) -> None:
    db = Database(database_url)
    index, other_process = (EngagementIndex(db, timedelta(hours=1)) for _ in range(2))
    answered = [SourceReport("source-0", "Source 0", SourceStatus.NO_DATA, None, 1.0)]
    try:
        await index.learn("person", answered, full=True)
        assert (await index.plan("person")).skip == {"source-0"}
        # Another process learns the source now holds data; this one only served a read
        # from its cache, which teaches nothing: its plan stands for RECENT_SECONDS.
        gained = [SourceReport("source-0", "Source 0", SourceStatus.OK, None, 1.0)]
        await other_process.learn("person", gained, full=False)
        await index.learn("person", [], full=False)
        kept = await index.plan("person")
        # What it learns itself is seen at once.
        await index.learn("person", gained, full=False)
        relearned = await index.plan("person")
    finally:
        await db.dispose()
    assert kept.skip == {"source-0"}
    assert relearned.skip == frozenset()
