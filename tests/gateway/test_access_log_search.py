"""The patient's access log is searched like every FHIR search: paged with ``_count`` and
next links, an exact total, newest first unless ``_sort=date``, filtered by ``date``,
and never cut short, however long the log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from consent.audit import AuditLog
from store.db import Database
from tests.consent.helpers import entry
from tests.gateway.conftest import FHIR_BASE, Gateway, every_entry

pytestmark = pytest.mark.anyio

#: More entries than the largest page (1000), so no single page can hold the log.
APPENDED = 1_061


async def _append(database_url: str, patient_id: str, count: int) -> None:
    """``count`` clinicians' reads of the patient, written as the gateway writes them."""
    database = Database(database_url)
    log = AuditLog(database)
    try:
        await asyncio.gather(*(log.append(entry(patient_id)) for _ in range(count)))
    finally:
        await log.aclose()
        await database.dispose()


def _events(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["resource"] for e in entries if e["search"]["mode"] == "match"]


async def _long_log(gateway: Gateway, database_url: str) -> str:
    patient_id = await gateway.patient_id()  # the first entry: the lookup
    await _append(database_url, patient_id, APPENDED)
    return patient_id


async def test_every_entry_is_served_page_by_page_newest_first(
    gateway: Gateway, database_url: str
) -> None:
    patient_id = await _long_log(gateway, database_url)
    headers = gateway.citizen()
    path = f"/fhir/AuditEvent?patient={patient_id}&_count=400"
    first = await gateway.client.get(path, headers=headers)
    assert first.status_code == 200, first.text
    bundle = first.json()
    assert bundle["total"] == APPENDED + 1
    assert len(_events(bundle["entry"])) == 400
    assert any(link["relation"] == "next" for link in bundle["link"])
    # Every page read appends an entry of its own (the reading above is the newest
    # now); the pages still hold exactly the entries the first page saw, each once,
    # newest first.
    events = _events(await every_entry(gateway, path, headers))
    seqs = [int(e["id"]) for e in events]
    assert seqs == list(range(APPENDED + 2, 0, -1))


async def test_the_largest_page_is_not_the_whole_log(gateway: Gateway, database_url: str) -> None:
    patient_id = await _long_log(gateway, database_url)
    response = await gateway.client.get(
        f"/fhir/AuditEvent?patient={patient_id}&_count=5000", headers=gateway.citizen()
    )
    bundle = response.json()
    assert bundle["total"] == APPENDED + 1
    assert len(_events(bundle["entry"])) == 1000
    (following,) = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
    rest = await gateway.client.get(
        following.removeprefix(FHIR_BASE.removesuffix("/fhir")), headers=gateway.citizen()
    )
    assert rest.status_code == 200, rest.text
    assert [int(e["id"]) for e in _events(rest.json()["entry"])] == list(
        range(APPENDED + 1 - 1000, 0, -1)
    )


async def test_date_sort_and_total_only(gateway: Gateway, database_url: str) -> None:
    patient_id = await gateway.patient_id()
    # Fifteen entries a day later, fifteen two days later: a split by date is certain.
    for days in (1, 2):
        with time_machine.travel(datetime.now(UTC) + timedelta(days=days), tick=False):
            await _append(database_url, patient_id, 15)
    headers = gateway.citizen()
    search = f"/fhir/AuditEvent?patient={patient_id}"
    everything = _events(await every_entry(gateway, f"{search}&_count=7", headers))
    assert len(everything) == 31
    # Each reading is logged too: the later readings add entries after these 31.
    oldest_first = _events(await every_entry(gateway, f"{search}&_sort=date&_count=7", headers))
    assert [e["id"] for e in oldest_first[:31]] == [e["id"] for e in reversed(everything)]
    # Split at the second day's entries (the readings since are recorded no earlier).
    moment = everything[0]["recorded"]
    later = [e["id"] for e in everything if e["recorded"] >= moment]
    earlier = [e["id"] for e in everything if e["recorded"] < moment]
    assert later == [str(seq) for seq in range(31, 16, -1)]
    assert earlier == [str(seq) for seq in range(16, 0, -1)]
    for prefix, expected in (("ge", later), ("lt", earlier)):
        response = await gateway.client.get(
            "/fhir/AuditEvent",
            params={"patient": patient_id, "date": prefix + moment, "_count": "1000"},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        found = [e["id"] for e in _events(response.json()["entry"])]
        # Only the readings since are newer than the first 31 entries.
        assert [i for i in found if int(i) <= 31] == expected
        assert prefix == "ge" or found == expected
        assert response.json()["total"] == len(found)
    counted = await gateway.client.get(f"{search}&_summary=count", headers=headers)
    assert counted.json()["total"] >= 31
    assert _events(counted.json()["entry"]) == []


async def test_unknown_parameters_are_reported_or_refused(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    search = f"/fhir/AuditEvent?patient={patient_id}&agent=someone"
    lenient = await gateway.client.get(search, headers=gateway.citizen())
    assert lenient.status_code == 200
    (outcome,) = [e for e in lenient.json()["entry"] if e["search"]["mode"] == "outcome"]
    assert "agent" in outcome["resource"]["issue"][0]["diagnostics"]
    strict = await gateway.client.get(
        search, headers={**gateway.citizen(), "Prefer": "handling=strict"}
    )
    assert strict.status_code == 400
    assert strict.json()["resourceType"] == "OperationOutcome"
    bad = await gateway.client.get(f"{search}&date=yesterday", headers=gateway.citizen())
    assert bad.status_code == 400
