"""Two gateway processes on one PostgreSQL database behave as one gateway.

Replicas share nothing but the database: a consent withdrawn through one is refused by
the other on its very next request, both append to one access-log chain that verifies,
and data cached by one is served by the other when the sources are down.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from consent.audit import AuditLog
from gateway.run.demo import region_source
from store.db import Database
from tests.conftest import IssuerKit
from tests.gateway.conftest import (
    NORD_PROVIDER,
    Gateway,
    Region,
    gateway_settings,
    regions,  # noqa: F401 - the simulated regions fixture, for this module too
)
from tests.gateway.consent_helpers import deactivate, grant
from tests.gateway.test_clients import free_port
from tests.gateway.test_overview import source_status
from tests.test_serve import SAMLAD

pytestmark = pytest.mark.anyio


@contextmanager
def replica(
    tmp_path: Path, name: str, database_url: str, issuer: IssuerKit, sources: dict[str, Region]
) -> Iterator[str]:
    """``samlad serve`` in its own process on ``database_url``; yields its base URL once
    it is ready, and stops it afterwards."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    document: dict[str, Any] = {
        "gateway": {
            "id_key": "replica-test-id-key-0123",
            "data_key": "replica-test-data-key-0123",
            "audit_checkpoint_key": "a1" * 32,
            "audit_checkpoint_file": str(tmp_path / f"{name}-checkpoints.jsonl"),
            "database_url": database_url,
            "auto_migrate": False,
            "port": port,
            "public_base_url": base,
        },
        "issuers": [
            {
                "issuer": issuer.config.issuer,
                "audience": issuer.config.audience,
                "jwks_file": str(issuer.config.jwks_file),
            }
        ],
        "sources": [region_source(r.spec, r.base_url) for r in sources.values()],
    }
    config = tmp_path / f"{name}.toml"
    config.write_bytes(tomli_w.dumps(document).encode())
    output = (tmp_path / f"{name}.log").open("w")
    process = subprocess.Popen(
        [*SAMLAD, "--log-level", "WARNING", "serve", "--config", str(config)],
        stdout=output,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / f"{name}.log").read_text()
            assert time.monotonic() < deadline, f"replica {name} did not become ready"
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.close()
    assert "Traceback" not in (tmp_path / f"{name}.log").read_text()


async def audit_entries(database_url: str) -> tuple[int, bool]:
    """How many entries the access log holds, and whether its chain verifies."""
    db = Database(database_url)
    try:
        report = await AuditLog(db).verify()
    finally:
        await db.dispose()
    return report.checked, report.ok


async def everything(gateway: Gateway, patient_id: str) -> httpx.Response:
    return await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$everything", headers=gateway.clinician()
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_replicas_share_consents_the_access_log_and_the_cache(
    tmp_path: Path,
    database_url: str,
    issuer: IssuerKit,
    regions: dict[str, Region],  # noqa: F811 - the fixture imported above
) -> None:
    settings = gateway_settings(database_url, issuer, regions)
    with (
        replica(tmp_path, "a", database_url, issuer, regions) as base_a,
        replica(tmp_path, "b", database_url, issuer, regions) as base_b,
    ):
        async with (
            httpx.AsyncClient(base_url=base_a, timeout=30) as client_a,
            httpx.AsyncClient(base_url=base_b, timeout=30) as client_b,
        ):
            a = Gateway(client_a, issuer, regions, settings)
            b = Gateway(client_b, issuer, regions, settings)
            # B meets the person first in its read from the cache below: a process reuses
            # a person's cache sync rows for up to a second (docs/operations.md#sources).
            patient_id = await a.patient_id()

            # A consent given through A lets the clinician read through B at once.
            consent = await grant(a, patient_id, NORD_PROVIDER)
            read_a = await everything(a, patient_id)
            assert read_a.status_code == 200, read_a.text
            fetched = source_status(read_a.json())
            assert {s["status"] for s in fetched.values()} == {"ok"}

            # The cache A wrote serves B while every region is down.
            try:
                for region in regions.values():
                    region.behaviour.fault = "unavailable-503"
                read_b = await everything(b, patient_id)
            finally:
                for region in regions.values():
                    region.behaviour.fault = "none"
            assert read_b.status_code == 200, read_b.text
            cached = source_status(read_b.json())
            assert set(cached) == set(fetched)
            assert {s["status"] for s in cached.values()} == {"cached"}
            assert read_b.json()["total"] == read_a.json()["total"] > 0
            assert await b.patient_id() == patient_id

            # Withdrawn through A: refused by B on its very next request.
            await deactivate(a, consent)
            refused = await everything(b, patient_id)
            assert refused.status_code == 403, refused.text
            assert refused.json()["resourceType"] == "OperationOutcome"

            # Both append to one chain, concurrently, and it verifies.
            before, _ = await audit_entries(database_url)
            reads = await asyncio.gather(
                *(
                    gateway.client.get(f"/fhir/Patient/{patient_id}", headers=gateway.citizen())
                    for gateway in (a, b)
                    for _ in range(15)
                )
            )
            assert [r.status_code for r in reads] == [200] * 30
    after, ok = await audit_entries(database_url)
    assert ok
    assert after == before + 30
