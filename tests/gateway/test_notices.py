"""Being told: a person's notices of news and of reads, sent from the outbox by e-mail
to a real SMTP server on loopback and to a webhook on loopback, batched, deduplicated,
held in quiet hours, retried; and no message carries health data or an identity number
(every message every test here sends is scanned as the test ends)."""

from __future__ import annotations

import asyncio
import queue
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.access.notice_channels import message_for
from gateway.access.notice_worker import NoticeWorker
from gateway.collect.notices import is_told_access
from gateway.run.demo import region_source
from gateway.services import Services
from simregions.app import SimRegionApp
from simregions.behaviour import Behaviour
from simregions.data import build_region_data
from simregions.mailsink import MailSink, Received
from simregions.server import RunningServer, serve_in_thread
from simregions.store import RegionStore
from tests.conftest import IssuerKit
from tests.consent.helpers import entry
from tests.gateway.conftest import NORD_PROVIDER, TEST_PERSON, Gateway, Region, running_gateway
from tests.gateway.consent_helpers import grant, open_emergency, seal

pytestmark = pytest.mark.anyio

EMAIL = "tolvan@example.test"
LINK = "https://samlad.example/app/"
WAIT = 30.0
#: The receivers' network, which the gateway may call (``callback_allowed_networks``).
LOOPBACK_NETWORK = "127.0.0.0/8"
#: Every line a message may hold: the fixed texts and the link, nothing else.
ALLOWED_LINES = {
    line
    for kind in ("lab-result", "access")
    for line in message_for(kind, LINK).body().splitlines()
}
IDENTITY_NUMBER = re.compile(r"(?<!\d)(\d{6}|\d{8})[-+]?\d{4}(?!\d)")


@dataclass
class Receiver:
    """A webhook endpoint: keeps every body; answers ``statuses`` in turn (then 200)."""

    server: RunningServer
    received: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    statuses: list[int] = field(default_factory=list)
    seen: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url + "/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    async def hook(request: Request) -> Response:
        got = holder[0]
        body = await request.body()
        got.seen.append(body)
        got.received.put(orjson.loads(body))
        return Response(status_code=got.statuses.pop(0) if got.statuses else 200)

    with serve_in_thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as server:
        holder.append(Receiver(server))
        yield holder[0]


@pytest.fixture
def own_region(regions: dict[str, Region]) -> Iterator[tuple[RegionStore, dict[str, Any]]]:
    """Region Nord's data in a store of its own, which the tests change."""
    spec = regions["nord"].spec
    store = RegionStore(build_region_data(spec))
    with serve_in_thread(SimRegionApp(spec, Behaviour(), store)) as server:
        source = region_source(spec, server.url + "/fhir") | {"id": "region-own", "name": "Egen"}
        yield store, source


@pytest.fixture
async def gw(
    database_url: str,
    issuer: IssuerKit,
    own_region: tuple[RegionStore, dict[str, Any]],
    sink: MailSink,
    receiver: Receiver,
) -> AsyncIterator[Gateway]:
    notices = {
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "link": LINK,
        "poll_seconds": 3600,  # the tests drive the worker
        "batch_seconds": 60,
        "retry_seconds": 30,
        "max_attempts": 3,
    }
    async with running_gateway(
        database_url,
        issuer,
        {},
        extra_sources=[own_region[1]],
        cache_fresh_seconds=0,
        dev_mode=True,
        callback_allowed_networks=[LOOPBACK_NETWORK],
        notices=notices,
        rate_limit_enabled=False,
    ) as running:
        yield running
    _scan(running, sink, receiver)


def _scan(gw: Gateway, sink: MailSink, receiver: Receiver) -> None:
    """Every message sent holds only the fixed texts: no identity number, no id, no
    record contents."""
    texts = [m.text for m in sink.received] + [b.decode() for b in receiver.seen]
    for sent in texts:
        assert IDENTITY_NUMBER.search(sent) is None
        assert TEST_PERSON not in sent
        assert "Tolvansson" not in sent
    for mail in sink.received:
        body = mail.message.get_body(("plain",))
        assert body is not None
        lines = {line.rstrip() for line in str(body.get_content()).splitlines()}
        assert lines <= ALLOWED_LINES | {""}, lines - ALLOWED_LINES
    for hook in receiver.seen:
        document = orjson.loads(hook)
        assert set(document) == {"type", "title", "text", "link"}
        assert document["link"] == LINK


def _worker(gw: Gateway) -> NoticeWorker:
    services: Services = gw.client._transport.app.state.services  # type: ignore[attr-defined]
    assert services.notice_worker is not None
    return services.notice_worker


async def _choose(gw: Gateway, patient_id: str, *parameters: tuple[str, str, str]) -> Any:
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": n, k: v} for n, k, v in parameters],
    }
    response = await gw.client.post(
        f"/fhir/Patient/{patient_id}/$notification-settings", json=body, headers=gw.citizen()
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _refresh(gw: Gateway, patient_id: str) -> None:
    response = await gw.client.get(f"/fhir/Patient/{patient_id}/$everything", headers=gw.citizen())
    assert response.status_code == 200, response.text


async def _new_result(gw: Gateway, store: RegionStore, patient_id: str, n: int) -> dict[str, Any]:
    """A new lab result of the person at the region (a copy of one it has)."""
    response = await gw.client.get(
        f"/fhir/Observation?patient={patient_id}&category=laboratory", headers=gw.citizen()
    )
    assert response.status_code == 200, response.text
    local = next(
        e["resource"]["id"].removeprefix("region-own.")
        for e in response.json()["entry"]
        if e["resource"]["resourceType"] == "Observation"
    )
    stored = store.read("Observation", local)
    assert stored is not None
    result: dict[str, Any] = orjson.loads(stored.body)
    now = datetime.now(UTC)
    result["id"] = f"new-result-{n}"
    result["meta"]["lastUpdated"] = now.isoformat()
    result["effectiveDateTime"] = now.isoformat()
    result["issued"] = now.isoformat()
    result.pop("effectivePeriod", None)
    store.put(result)
    return result


async def _sent(gw: Gateway, later: timedelta) -> int:
    """One round of the worker at ``later`` past now."""
    worker = _worker(gw)
    worker.clock = lambda: datetime.now(UTC) + later
    return await worker.once()


async def _mails(sink: MailSink, count: int) -> list[Received]:
    async with asyncio.timeout(WAIT):
        return await sink.wait_for(count)


async def _count(gw: Gateway, table: str) -> int:
    services: Services = gw.client._transport.app.state.services  # type: ignore[attr-defined]
    async with services.db.connect() as conn:
        count = await conn.execute(text(f"SELECT COUNT(*) FROM {table}"))  # noqa: S608
        return int(count.scalar_one())


async def test_a_new_lab_result_and_a_clinicians_read_reach_the_persons_email(
    gw: Gateway, own_region: tuple[RegionStore, dict[str, Any]], sink: MailSink
) -> None:
    store, _ = own_region
    patient_id = await gw.patient_id()
    await _refresh(gw, patient_id)  # the record is cached: what comes next is news
    chosen = await _choose(
        gw,
        patient_id,
        ("kind", "valueCode", "lab-result"),
        ("kind", "valueCode", "access"),
        ("email", "valueString", EMAIL),
    )
    assert {"name": "email", "valueString": EMAIL} in chosen["parameter"]
    read = await gw.client.get(
        f"/fhir/Patient/{patient_id}/$notification-settings", headers=gw.citizen()
    )
    assert read.json() == chosen
    await grant(gw, patient_id, NORD_PROVIDER)

    new = await _new_result(gw, store, patient_id, 1)
    await _refresh(gw, patient_id)
    assert await _count(gw, "notice") == 1, "the person's own read is not told of"
    clinician = gw.clinician()
    seen = await gw.client.get(f"/fhir/Observation?patient={patient_id}", headers=clinician)
    assert seen.status_code == 200
    await gw.client.get(f"/fhir/Patient/{patient_id}", headers=clinician)
    assert await _count(gw, "notice") == 2, "two reads by one clinician: one notice"

    assert await _sent(gw, timedelta(0)) == 0, "batched: nothing before the window ends"
    assert await _sent(gw, timedelta(seconds=61)) == 2
    mails = await _mails(sink, 2)
    assert sorted(m.subject for m in mails) == [
        "Din journal har lästs",
        "Ny information i din journal",
    ]
    assert all(m.recipients == (EMAIL,) for m in mails)
    assert all(LINK in m.text for m in mails)
    for mail in mails:  # (and every line is a fixed one: see _scan)
        assert new["id"] not in mail.text
        assert patient_id not in mail.text
        for coding in new["code"].get("coding", []):
            assert coding.get("display", new["id"]) not in mail.text
    assert await _count(gw, "notice") == 0
    assert await _count(gw, "notice_message") == 0
    assert await _sent(gw, timedelta(seconds=61)) == 0


async def test_the_webhook_is_tried_again_with_backoff_then_given_up(
    gw: Gateway, receiver: Receiver
) -> None:
    patient_id = await gw.patient_id()
    await _choose(
        gw, patient_id, ("kind", "valueCode", "access"), ("webhook", "valueUrl", receiver.url)
    )
    receiver.statuses = [500, 503]
    await grant(gw, patient_id, NORD_PROVIDER)
    await gw.client.get(f"/fhir/Patient/{patient_id}", headers=gw.clinician())
    assert await _sent(gw, timedelta(seconds=61)) == 1  # answered 500
    assert await _sent(gw, timedelta(seconds=62)) == 0, "not before the backoff"
    assert await _sent(gw, timedelta(seconds=92)) == 1  # answered 503
    assert await _sent(gw, timedelta(seconds=93 + 30)) == 0, "the backoff doubled"
    assert await _sent(gw, timedelta(seconds=93 + 61)) == 1
    bodies = [receiver.received.get(timeout=WAIT) for _ in range(3)]
    assert bodies[-1] == {
        "type": "access",
        "title": "Din journal har lästs",
        "text": message_for("access", LINK).text,
        "link": LINK,
    }
    assert await _count(gw, "notice_message") == 0

    receiver.statuses = [500, 500, 500]
    await gw.client.get(f"/fhir/Patient/{patient_id}", headers=gw.clinician())
    for seconds in (61, 92, 153):
        assert await _sent(gw, timedelta(seconds=seconds)) == 1
    assert await _count(gw, "notice_message") == 0, "given up after max_attempts"


def _next_local(hour: int, minute: int = 0) -> datetime:
    """The next moment at least two hours away at this local (Swedish) time."""
    local = datetime.now(ZoneInfo("Europe/Stockholm"))
    moment = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    while moment - local < timedelta(hours=2):
        moment += timedelta(days=1)
    return moment.astimezone(UTC)


async def test_quiet_hours_hold_messages_until_they_end(gw: Gateway, sink: MailSink) -> None:
    patient_id = await gw.patient_id()
    await _choose(
        gw,
        patient_id,
        ("kind", "valueCode", "access"),
        ("email", "valueString", EMAIL),
        ("quietStart", "valueTime", "22:00:00"),
        ("quietEnd", "valueTime", "07:00:00"),
    )
    await grant(gw, patient_id, NORD_PROVIDER)
    await gw.client.get(f"/fhir/Patient/{patient_id}", headers=gw.clinician())
    night = _next_local(23, 30)
    morning = night + timedelta(hours=8)  # 07:30
    worker = _worker(gw)
    for moment in (night, night + timedelta(hours=7)):  # 23:30, 06:30
        worker.clock = lambda at=moment: at  # type: ignore[misc]
        assert await worker.once() == 0
    assert await _count(gw, "notice") == 1, "held in quiet hours"
    worker.clock = lambda: morning
    assert await worker.once() == 1
    assert [m.subject for m in await _mails(sink, 1)] == ["Din journal har lästs"]


async def test_emergency_access_is_told_to_whoever_has_a_channel(
    gw: Gateway, sink: MailSink
) -> None:
    patient_id = await gw.patient_id()
    await _choose(gw, patient_id, ("kind", "valueCode", "note"), ("email", "valueString", EMAIL))
    await grant(gw, patient_id, NORD_PROVIDER)
    await gw.client.get(f"/fhir/Patient/{patient_id}", headers=gw.clinician())
    assert await _count(gw, "notice") == 0, "reads were not asked for"
    syd = gw.clinician(unit="SE2321009003-VCSS", provider="SE2321009003-SYD0")
    opened = await open_emergency(gw, patient_id, syd, "Medvetslös på akuten")
    assert opened.status_code == 200, opened.text
    assert await _count(gw, "notice") == 1
    assert await _sent(gw, timedelta(seconds=61)) == 1
    assert [m.subject for m in await _mails(sink, 1)] == ["Din journal har lästs"]


async def test_opting_out_removes_what_waits_and_bad_settings_are_refused(gw: Gateway) -> None:
    patient_id = await gw.patient_id()
    await _choose(gw, patient_id, ("kind", "valueCode", "access"), ("email", "valueString", EMAIL))
    await grant(gw, patient_id, NORD_PROVIDER)
    await gw.client.get(f"/fhir/Patient/{patient_id}", headers=gw.clinician())
    assert await _count(gw, "notice") == 1
    assert await _choose(gw, patient_id) == {"resourceType": "Parameters", "parameter": []}
    assert await _count(gw, "notice") == 0
    url = f"/fhir/Patient/{patient_id}/$notification-settings"
    for parameters in (
        [{"name": "kind", "valueCode": "everything"}, {"name": "email", "valueString": EMAIL}],
        [{"name": "kind", "valueCode": "access"}],
        [{"name": "kind", "valueCode": "access"}, {"name": "email", "valueString": "no\r\nBcc: x"}],
        [{"name": "kind", "valueCode": "access"}, {"name": "webhook", "valueUrl": "http://x.se/"}],
        [
            {"name": "kind", "valueCode": "access"},
            {"name": "email", "valueString": EMAIL},
            {"name": "quietStart", "valueTime": "25:00:00"},
            {"name": "quietEnd", "valueTime": "07:00:00"},
        ],
    ):
        body = {"resourceType": "Parameters", "parameter": parameters}
        refused = await gw.client.post(url, json=body, headers=gw.citizen())
        assert refused.status_code == 400, parameters
        assert refused.json()["resourceType"] == "OperationOutcome"
        assert EMAIL not in refused.text
    services: Services = gw.client._transport.app.state.services  # type: ignore[attr-defined]
    await _choose(gw, patient_id, ("kind", "valueCode", "access"), ("email", "valueString", EMAIL))
    async with services.db.connect() as conn:
        stored = (await conn.execute(text("SELECT email FROM notice_setting"))).scalar_one()
    assert EMAIL.encode() not in bytes(stored), "sealed at rest"


@pytest.mark.parametrize("sealed", [{}, {"delay_days": 14}], ids=["record", "delayed-release"])
async def test_news_the_person_cannot_read_online_is_not_told(
    gw: Gateway, own_region: tuple[RegionStore, dict[str, Any]], sealed: dict[str, Any]
) -> None:
    """A result under the person's seal, or held back by their delayed release, is not
    news to them: being told it arrived would tell them it exists."""
    store, _ = own_region
    patient_id = await gw.patient_id()
    await _refresh(gw, patient_id)
    await _choose(
        gw, patient_id, ("kind", "valueCode", "lab-result"), ("email", "valueString", EMAIL)
    )
    await _new_result(gw, store, patient_id, 1)
    await seal(gw, patient_id, **sealed)
    await _refresh(gw, patient_id)
    assert await _count(gw, "notice") == 1
    assert await _sent(gw, timedelta(seconds=61)) == 0
    assert await _count(gw, "notice") == 0, "dropped, not left to wait"
    assert await _count(gw, "notice_message") == 0


@pytest.mark.parametrize(
    "webhook", ["https://169.254.169.254/latest/", "https://10.0.0.7/hook", "https://[::1]/hook"]
)
async def test_a_webhook_inside_the_network_is_refused(gw: Gateway, webhook: str) -> None:
    patient_id = await gw.patient_id()
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "kind", "valueCode": "access"},
            {"name": "webhook", "valueUrl": webhook},
        ],
    }
    refused = await gw.client.post(
        f"/fhir/Patient/{patient_id}/$notification-settings", json=body, headers=gw.citizen()
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert webhook.split("/")[2] not in refused.text
    assert await _count(gw, "notice_setting") == 0


async def test_an_idle_worker_writes_nothing(gw: Gateway) -> None:
    worker = _worker(gw)
    assert await worker.outbox.idle()
    assert await _sent(gw, timedelta(seconds=61)) == 0


def test_a_read_by_anyone_but_the_person_is_an_access_to_tell_of() -> None:
    """A proxy is logged as the citizen they are, by their own opaque id: their reads are
    told of like a clinician's; the person's own reads, and changes of choices, are not."""

    def told(**fields: Any) -> bool:
        own_read = {"actor_kind": "citizen", "actor_id": "p1", "outcome": "allowed"}
        return is_told_access(entry("p1", **(own_read | fields)))

    assert not told(action="everything")
    assert told(action="everything", actor_id="proxy-1")
    assert told(action="read", actor_kind="clinician", actor_id="D")
    for change in ("seal-create", "proxy-create", "notice-settings-change", "own-data-create"):
        assert not told(action=change, actor_id="proxy-1")
    assert not told(action="read", actor_id="x", outcome="denied")
