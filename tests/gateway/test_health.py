"""`/livez` and `/readyz`: alive, ready only on a reachable database at this code's schema."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gateway.http.health import probe_engine, readiness_problem
from store.db import sync_url
from store.migrate import HEAD_REVISION, upgrade
from tests.conftest import IssuerKit
from tests.gateway.conftest import running_gateway

pytestmark = pytest.mark.anyio

UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:9/none"


async def set_revision(database_url: str, revision: str) -> None:
    """Record ``revision`` as the schema's (in a thread: the gateway's own writes, in
    this event loop, must be able to finish meanwhile)."""

    def update() -> None:
        engine = create_engine(sync_url(database_url))
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
        engine.dispose()

    await asyncio.to_thread(update)


async def test_live_and_ready_on_a_current_database(
    database_url: str, issuer: IssuerKit, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_gateway(database_url, issuer, {}) as gateway:
        with caplog.at_level(logging.INFO, logger="samlad.access"):
            live = await gateway.client.get("/livez")
            ready = await gateway.client.get("/readyz")
            older_name = await gateway.client.get("/healthz")
            await gateway.client.get("/fhir/metadata")
        capability = (await gateway.client.get("/fhir/metadata")).text
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert older_name.status_code == 200
    logged = [r.getMessage() for r in caplog.records if r.name == "samlad.access"]
    assert len(logged) == 1, "probes are not logged"
    assert "/fhir/metadata" in logged[0]
    for path in ("livez", "readyz", "healthz", "metrics"):
        assert path not in capability


async def test_not_ready_when_the_schema_is_behind_or_ahead(
    database_url: str, issuer: IssuerKit
) -> None:
    async with running_gateway(database_url, issuer, {}) as gateway:
        try:
            for revision in ("0001", "9999"):
                await set_revision(database_url, revision)
                response = await gateway.client.get("/readyz")
                assert response.status_code == 503
                outcome = response.json()
                assert outcome["resourceType"] == "OperationOutcome"
                assert outcome["issue"][0]["code"] == "transient"
                assert "schema is not current" in outcome["issue"][0]["diagnostics"]
                assert (await gateway.client.get("/livez")).status_code == 200
        finally:
            await set_revision(database_url, HEAD_REVISION)
        assert (await gateway.client.get("/readyz")).status_code == 200


async def test_an_unmigrated_database_is_not_ready(tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert await readiness_problem(probe_engine(empty)) == "the database schema is not current"


async def test_an_unreachable_database_is_not_ready() -> None:
    assert await readiness_problem(probe_engine(UNREACHABLE_DB)) == "the database is unavailable"


async def test_readyz_answers_503_when_the_database_goes_away(
    tmp_path: Path, issuer: IssuerKit
) -> None:
    path = tmp_path / "samlad.db"
    database_url = f"sqlite:///{path}"
    upgrade(database_url)
    async with running_gateway(database_url, issuer, {}) as gateway:
        assert (await gateway.client.get("/readyz")).status_code == 200
        # The file goes, and a directory takes its place: it cannot be opened at all.
        path.rename(tmp_path / "moved.db")
        path.mkdir()
        try:
            response = await gateway.client.get("/readyz")
            live = await gateway.client.get("/livez")
        finally:
            path.rmdir()
            (tmp_path / "moved.db").rename(path)
        assert (await gateway.client.get("/readyz")).status_code == 200
    assert response.status_code == 503
    assert response.json()["resourceType"] == "OperationOutcome"
    issue = response.json()["issue"][0]
    assert issue["diagnostics"] == "not ready: the database is unavailable"
    assert str(tmp_path) not in response.text
    assert live.status_code == 200
