"""Fresh simulated regions (their schedules and what was written to them start over) and
a gateway over them, for the tests of writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from simregions.app import SimRegionApp, create_app
from simregions.behaviour import Behaviour
from simregions.regions import DEFAULT_REGIONS
from simregions.server import start_in_thread
from tests.conftest import IssuerKit
from tests.gateway.conftest import Gateway, Region, running_gateway

#: Writes are retried quickly here; the worker looks often.
FAST = {
    "write_wait_seconds": 3.0,
    "write_poll_seconds": 0.05,
    "write_retry_seconds": 0.05,
    "write_retry_cap_seconds": 0.2,
    "retry_attempts": 1,
    "source_timeout": 2.0,
}


@dataclass
class Written:
    """The regions (by id) and their apps, to look at what they hold."""

    regions: dict[str, Region]
    apps: dict[str, SimRegionApp]


def fresh_regions() -> Iterator[Written]:
    regions: dict[str, Region] = {}
    apps: dict[str, SimRegionApp] = {}
    try:
        for spec in DEFAULT_REGIONS:
            behaviour = Behaviour()
            app = create_app(spec, behaviour)
            regions[spec.id] = Region(spec, behaviour, start_in_thread(app))
            apps[spec.id] = app
        yield Written(regions, apps)
    finally:
        for region in regions.values():
            region.server.stop()


@asynccontextmanager
async def gateway_over(
    database_url: str, issuer: IssuerKit, written: Written, **overrides: Any
) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url, issuer, written.regions, **(FAST | overrides)) as gw:
        yield gw


async def first_free(gw: Gateway, region: str, service: str = "Läkarbesök") -> dict[str, Any]:
    """The first free Slot the gateway offers at ``region``."""
    response = await gw.client.get(
        "/fhir/Slot",
        params={"status": "free", "start": "ge2026-11-03", "service-type": service},
        headers=gw.citizen(),
    )
    assert response.status_code == 200, response.text
    slots = [
        e["resource"]
        for e in response.json()["entry"]
        if e["search"]["mode"] == "match" and e["resource"]["id"].startswith(f"region-{region}.")
    ]
    assert slots
    return dict(slots[0])


def booking(patient_id: str, slot_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot_id}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
    }


async def until(condition: Any, seconds: float = 10.0) -> None:
    """Wait for ``condition()`` (awaited if a coroutine) to be true."""
    for _ in range(int(seconds / 0.05)):
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")
