"""A slow or failing region never fails the overview: it is reported, the rest is served."""

from __future__ import annotations

import socket
import time

import pytest

from gateway.demo import region_source
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
    async with running_gateway(database_url, issuer, regions, source_timeout=0.5) as gateway:
        patient_id = await gateway.patient_id()
        regions["vast"].behaviour.fault = "timeout"
        started = time.perf_counter()
        response = await gateway.client.get(
            f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
        )
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed < 2.0
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
