"""`/metrics`: behind its token, by route template, per source, and nothing personal."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.run.logs import JsonFormatter
from tests.conftest import IssuerKit
from tests.gateway.conftest import TEST_PERSON, Gateway, Region, running_gateway
from tests.gateway.test_clients import free_port
from tests.test_serve import SAMLAD

pytestmark = pytest.mark.anyio

TOKEN = "metrics-test-token-0123456789"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples(text).items() if n == name and wanted <= ls)


async def scrape(gateway: Gateway) -> str:
    response = await gateway.client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_are_not_served_without_a_token(database_url: str, issuer: IssuerKit) -> None:
    async with running_gateway(database_url, issuer, {}) as gateway:
        response = await gateway.client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_metrics_need_their_token(database_url: str, issuer: IssuerKit) -> None:
    async with running_gateway(database_url, issuer, {}, metrics_token=TOKEN) as gateway:
        for headers in ({}, {"Authorization": "Bearer wrong"}, gateway.citizen()):
            response = await gateway.client.get("/metrics", headers=headers)
            assert response.status_code == 401
            assert response.json()["resourceType"] == "OperationOutcome"
        assert "samlad_http_requests_total" in await scrape(gateway)


async def test_a_read_shows_in_the_metrics_and_nothing_personal_does(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(database_url, issuer, regions, metrics_token=TOKEN) as gateway:
        patient_id = await gateway.patient_id()
        for _ in range(2):  # the second read is served from the cache
            response = await gateway.client.get(
                f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
            )
            assert response.status_code == 200, response.text
        unknown = await gateway.client.get(f"/fhir/nothing/{TEST_PERSON}")
        assert unknown.status_code == 404
        text = await scrape(gateway)

    route = "/fhir/Patient/{patient_id}/$everything"
    assert value(text, "samlad_http_requests_total", route=route, status="200") == 2
    assert value(text, "samlad_http_request_duration_seconds_count", route=route) == 2
    assert value(text, "samlad_http_requests_total", route="<unmatched>", status="404") == 1
    for region in regions.values():
        source = region.source_id
        assert value(text, "samlad_cache_reads_total", source=source, result="miss") >= 1
        assert value(text, "samlad_cache_reads_total", source=source, result="hit") >= 1
        assert value(text, "samlad_source_reports_total", source=source, status="cached") >= 1
        assert value(text, "samlad_source_fetch_duration_seconds_count", source=source) >= 1
        assert value(text, "samlad_source_circuit_state", source=source, state="closed") == 1
        assert value(text, "samlad_source_circuit_state", source=source, state="open") == 0
        in_use = value(text, "samlad_source_connections", source=source, state="in-use")
        idle = value(text, "samlad_source_connections", source=source, state="idle")
        assert (in_use, idle >= 1) == (0, True), "kept-alive connections, none in use"
    assert value(text, "samlad_audit_append_duration_seconds_count") >= 2
    # Neither the patient's id nor their identity number, in any spelling.
    digits = TEST_PERSON
    for personal in (patient_id, digits, digits[2:], f"{digits[:8]}-{digits[8:]}", digits[2:8]):
        assert personal not in text, personal
    labels = {v for (_, ls) in samples(text) for _, v in ls}
    assert not [v for v in labels if re.search(r"\d{6}[-+]?\d{4}", v)]
    assert not [v for v in labels if patient_id in v]


async def test_a_failing_source_shows_its_open_breaker_and_stale_cache(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    settings = {
        "metrics_token": TOKEN,
        "cache_fresh_seconds": 0,  # every read asks the sources
        "retry_attempts": 1,
        "breaker_failure_threshold": 1,
        "breaker_cool_down": 3600,  # open for the rest of the test, however slow
    }
    nord = regions["nord"]
    async with running_gateway(database_url, issuer, regions, **settings) as gateway:
        patient_id = await gateway.patient_id()
        path = f"/fhir/Patient/{patient_id}/$everything"
        assert (await gateway.client.get(path, headers=gateway.citizen())).status_code == 200
        nord.behaviour.fault = "unavailable-503"
        assert (await gateway.client.get(path, headers=gateway.citizen())).status_code == 200
        text = await scrape(gateway)
    source = nord.source_id
    assert value(text, "samlad_source_circuit_state", source=source, state="open") == 1
    assert value(text, "samlad_source_circuit_state", source=source, state="closed") == 0
    assert value(text, "samlad_source_reports_total", source=source, status="stale") == 1
    assert value(text, "samlad_cache_reads_total", source=source, result="stale") == 1
    assert (
        value(text, "samlad_source_fetch_duration_seconds_count", source=source, outcome="failed")
        == 1
    )
    for other in regions.values():
        if other is not nord:
            closed = value(
                text, "samlad_source_circuit_state", source=other.source_id, state="closed"
            )
            assert closed == 1


def test_json_logs_carry_structured_fields() -> None:
    record = logging.LogRecord("samlad.access", logging.INFO, "", 0, "%s %d", ("GET", 200), None)
    record.route = "/fhir/Patient/{id}"
    document = orjson.loads(JsonFormatter().format(record))
    assert document["message"] == "GET 200"
    assert document["route"] == "/fhir/Patient/{id}"
    assert document["level"] == "INFO"
    assert document["logger"] == "samlad.access"


def test_several_workers_count_together(tmp_path: Path, issuer: IssuerKit) -> None:
    """Under ``--workers 2`` a scrape answered by either worker shows both workers'
    requests (prometheus-client's multiprocess mode), and each one's breaker gauges."""
    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        "[gateway]\n"
        'id_key = "metrics-test-id-key-0123"\n'
        'data_key = "metrics-test-data-key-0123"\n'
        f'audit_checkpoint_key = "{"a1" * 32}"\n'
        f'database_url = "sqlite:///{tmp_path / "samlad.db"}"\n'
        "auto_migrate = true\n"
        f'metrics_token = "{TOKEN}"\n'
        'log_format = "json"\n'
        f"port = {port}\n"
        "\n[[issuers]]\n"
        f'issuer = "{issuer.config.issuer}"\n'
        f'audience = "{issuer.config.audience}"\n'
        f'jwks_file = "{issuer.config.jwks_file}"\n'
        "\n[[sources]]\n"
        'id = "never-asked"\n'
        'name = "A source no request here reaches"\n'
        'kind = "fhir-r4"\n'
        f'base_url = "http://127.0.0.1:{free_port()}/fhir"\n'
    )
    process = subprocess.Popen(
        [*SAMLAD, "--log-level", "INFO", "serve", "--config", str(config), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # both workers up: each has set its breaker gauge (labelled by pid)
            try:
                text = httpx.get(f"{base}/metrics", headers=SCRAPE, timeout=1).text
                pids = {
                    dict(ls)["pid"]
                    for (n, ls), _ in samples(text).items()
                    if n == "samlad_source_circuit_state"
                }
                if len(pids) == 2:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the workers did not come up"
            time.sleep(0.2)
        for _ in range(20):  # new connections, spread over the workers
            answer = httpx.get(f"{base}/fhir/metadata", headers={"Connection": "close"})
            assert answer.status_code == 200
        for _ in range(6):  # whichever worker answers, it counts all twenty
            scraped = httpx.get(f"{base}/metrics", headers={**SCRAPE, "Connection": "close"})
            total = value(scraped.text, "samlad_http_requests_total", route="/fhir/metadata")
            assert total == 20
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "Traceback" not in output
    access = [line for line in output.splitlines() if '"samlad.access"' in line]
    assert len(access) == 20, "one JSON line per request; probes and scrapes are not logged"
    assert '"route":"/fhir/metadata"' in access[0]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_whether_the_worker_hears_of_standing_changes_shows(
    database_url: str, issuer: IssuerKit
) -> None:
    async with running_gateway(database_url, issuer, {}, metrics_token=TOKEN) as gateway:
        memory = gateway.services.consents.memory
        deadline = time.monotonic() + 10
        while not memory.listening:
            assert time.monotonic() < deadline, "the worker never listened"
            await asyncio.sleep(0.01)
        assert value(await scrape(gateway), "samlad_standing_listening") == 1
        memory.disconnected()  # as when its connection drops
        assert value(await scrape(gateway), "samlad_standing_listening") == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_no_standing_channel_shows_on_sqlite(database_url: str, issuer: IssuerKit) -> None:
    async with running_gateway(database_url, issuer, {}, metrics_token=TOKEN) as gateway:
        assert "samlad_standing_listening{" not in await scrape(gateway)


async def test_the_workers_turns_and_refusals_show(database_url: str, issuer: IssuerKit) -> None:
    settings = {"metrics_token": TOKEN, "max_concurrent_refreshes": 1}
    async with running_gateway(database_url, issuer, {}, **settings) as gateway:
        turns = gateway.services.collector.all_turns["sources"]
        async with turns.turn(time.monotonic()) as held:
            assert held is not None
            async with turns.turn(time.monotonic(), patience=0.0) as refused:
                assert refused is None
            text = await scrape(gateway)
        after = await scrape(gateway)

    assert value(text, "samlad_turns", work="sources", state="in-use") == 1
    assert value(text, "samlad_turns", work="streams", state="in-use") == 0
    assert value(text, "samlad_turns_refused_total", work="sources") == 1
    assert value(after, "samlad_turns", work="sources", state="in-use") == 0
    assert value(after, "samlad_turns_refused_total", work="sources") == 1
