"""Notices go to whoever chose them only while they stand for the person: a guardian's
end when the child turns 13, a proxy's when the grant ends; what waited by then is
dropped, not sent. The access decision's clock is injected (``services.clock``) to pass
the end: the child's 13th birthday is a fixed date, so the test reads the same on any
day."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.access.notice_worker import NoticeWorker
from simregions.mailsink import MailSink
from tests.conftest import IssuerKit
from tests.gateway.conftest import CHILD, GUARDIAN, PROXY, Gateway, Region, running_gateway
from tests.gateway.consent_helpers import grant_proxy

pytestmark = pytest.mark.anyio

EMAIL = "vardnad@example.test"
#: The day CHILD (born 2016-05-12) turns 13.
THIRTEENTH = datetime(2029, 5, 12, tzinfo=UTC)


@pytest.fixture
async def gw(
    database_url: str,
    issuer: IssuerKit,
    regions: dict[str, Region],
    guardian_register: Path,
    sink: MailSink,
) -> AsyncIterator[Gateway]:
    notices = {
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "link": "https://samlad.example/app/",
        "poll_seconds": 3600,  # the tests drive the worker
        "batch_seconds": 60,
    }
    async with running_gateway(
        database_url,
        issuer,
        regions,
        guardian_registers=[{"file": str(guardian_register)}],
        notices=notices,
        rate_limit_enabled=False,
    ) as running:
        yield running


async def _choose(gw: Gateway, patient_id: str, setter: str) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "kind", "valueCode": "access"},
            {"name": "email", "valueString": EMAIL},
        ],
    }
    response = await gw.client.post(
        f"/fhir/Patient/{patient_id}/$notification-settings",
        json=body,
        headers=gw.citizen(setter),
    )
    assert response.status_code == 200, response.text


async def _read(gw: Gateway, patient_id: str, reader: str) -> None:
    response = await gw.client.get(f"/fhir/Patient/{patient_id}", headers=gw.citizen(reader))
    assert response.status_code == 200, response.text


async def _round(gw: Gateway) -> int:
    """One round of the worker, past the batching window."""
    worker: NoticeWorker | None = gw.services.notice_worker
    assert worker is not None
    worker.clock = lambda: datetime.now(UTC) + timedelta(seconds=61)
    return await worker.once()


async def _count(gw: Gateway, table: str) -> int:
    async with gw.services.db.connect() as conn:
        count = await conn.execute(text(f"SELECT COUNT(*) FROM {table}"))  # noqa: S608
        return int(count.scalar_one())


async def test_a_guardians_notices_end_when_the_child_turns_13(gw: Gateway) -> None:
    gw.services.clock = lambda: THIRTEENTH - timedelta(days=365)  # the child is 12, any day
    child = await gw.patient_id(CHILD, asking=GUARDIAN)
    await _choose(gw, child, GUARDIAN)
    await _read(gw, child, GUARDIAN)  # someone other than the child read: told of
    assert await _round(gw) == 1
    await _read(gw, child, GUARDIAN)
    assert await _count(gw, "notice") == 1
    gw.services.clock = lambda: THIRTEENTH + timedelta(days=1)
    assert await _round(gw) == 0
    assert await _count(gw, "notice") == 0
    assert await _count(gw, "notice_message") == 0


async def test_a_proxys_notices_end_with_the_grant(gw: Gateway) -> None:
    tolvan = await gw.patient_id()
    end = (datetime.now(UTC) + timedelta(days=1)).isoformat(timespec="seconds")
    await grant_proxy(gw, tolvan, PROXY, manages=True, end=end)
    await _choose(gw, tolvan, PROXY)
    await _read(gw, tolvan, PROXY)
    assert await _round(gw) == 1
    await _read(gw, tolvan, PROXY)
    assert await _count(gw, "notice") == 1
    gw.services.clock = lambda: datetime.now(UTC) + timedelta(days=1, seconds=1)
    assert await _round(gw) == 0
    assert await _count(gw, "notice") == 0


async def test_the_persons_own_choice_is_theirs_alone(gw: Gateway) -> None:
    """Set by the person, the standing is theirs: a proxy's read is told of, also after
    the person's proxy grant ends."""
    tolvan = await gw.patient_id()
    end = (datetime.now(UTC) + timedelta(days=1)).isoformat(timespec="seconds")
    await grant_proxy(gw, tolvan, PROXY, end=end)
    await _choose(gw, tolvan, "191212121212")
    await _read(gw, tolvan, PROXY)
    gw.services.clock = lambda: datetime.now(UTC) + timedelta(days=2)
    assert await _round(gw) == 1
