"""Topic-based subscriptions end to end: a region of the test's own on loopback whose
record the test changes, the gateway over SQLite and PostgreSQL, and a receiver on
loopback that the notifications reach."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhir_profiles.subscriptions import (
    BACKPORT_STATUS,
    FILTER_CRITERIA,
    HEARTBEAT_PERIOD,
    PAYLOAD_CONTENT,
)
from gateway.run.demo import region_source
from gateway.services import Services
from simregions.app import SimRegionApp
from simregions.behaviour import Behaviour
from simregions.data import build_region_data
from simregions.server import RunningServer, serve_in_thread
from simregions.store import RegionStore
from store.db import Database
from tests.conftest import IssuerKit
from tests.gateway.conftest import NORD_PROVIDER, TEST_PERSON, Gateway, Region, running_gateway
from tests.gateway.consent_helpers import deactivate, grant

pytestmark = pytest.mark.anyio

LAB = "https://samlad.se/fhir/SubscriptionTopic/lab-result"
#: Generous: a bound on a test that has failed, never a measure of speed.
WAIT = 30.0
#: The receivers' network, which the gateway may call (``callback_allowed_networks``).
LOOPBACK_NETWORK = "127.0.0.0/8"


@dataclass
class Receiver:
    """An integrator's endpoint: records every notification; answers ``statuses`` in
    turn (then 200)."""

    server: RunningServer
    received: queue.Queue[tuple[dict[str, str], dict[str, Any]]] = field(
        default_factory=queue.Queue
    )
    statuses: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url + "/hook"

    async def next(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The next notification (fails the test if none comes within :data:`WAIT`)."""
        return await asyncio.to_thread(self.received.get, True, WAIT)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    async def hook(request: Request) -> Response:
        got = holder[0]
        got.received.put((dict(request.headers), orjson.loads(await request.body())))
        return Response(status_code=got.statuses.pop(0) if got.statuses else 200)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with serve_in_thread(app) as server:
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
    database_url: str, issuer: IssuerKit, own_region: tuple[RegionStore, dict[str, Any]]
) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url,
        issuer,
        {},
        extra_sources=[own_region[1]],
        cache_fresh_seconds=0,
        dev_mode=True,
        callback_allowed_networks=[LOOPBACK_NETWORK],
        subscription_poll_seconds=0.05,
        subscription_retry_seconds=0.05,
        subscription_max_attempts=3,
        rate_limit_enabled=False,
    ) as running:
        yield running


def _services(gw: Gateway) -> Services:
    services: Services = gw.client._transport.app.state.services  # type: ignore[attr-defined]
    return services


def subscription(
    endpoint: str,
    patient_id: str | None = None,
    payload: str = "full-resource",
    **channel: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "new lab results",
        "criteria": LAB,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": payload}]},
            "header": ["Authorization: Bearer receiver-secret"],
            **channel,
        },
    }
    if patient_id is not None:
        extension = {
            "url": FILTER_CRITERIA,
            "valueString": f"Observation?patient=Patient/{patient_id}",
        }
        body["_criteria"] = {"extension": [extension]}
    return body


async def _refresh(gw: Gateway, patient_id: str) -> None:
    """A read of the record: the gateway asks the region what changed."""
    response = await gw.client.get(f"/fhir/Patient/{patient_id}/$everything", headers=gw.citizen())
    assert response.status_code == 200, response.text


def _new_result(store: RegionStore, bundle_ids: list[str], number: int) -> str:
    """A new lab result in the region (a copy of one it has, a new fact); its gateway id."""
    local = next(i.removeprefix("region-own.") for i in bundle_ids)
    stored = store.read("Observation", local)
    assert stored is not None
    result = orjson.loads(stored.body)
    now = datetime.now(UTC)
    result["id"] = f"new-result-{number}"
    result["meta"]["lastUpdated"] = now.isoformat()
    result["effectiveDateTime"] = now.isoformat()
    result.pop("effectivePeriod", None)
    result["issued"] = now.isoformat()
    store.put(result)
    return f"region-own.new-result-{number}"


async def _observation_ids(gw: Gateway, patient_id: str) -> list[str]:
    response = await gw.client.get(
        f"/fhir/Observation?patient={patient_id}&category=laboratory", headers=gw.citizen()
    )
    assert response.status_code == 200, response.text
    return [
        e["resource"]["id"]
        for e in response.json().get("entry", [])
        if e["resource"]["resourceType"] == "Observation"
    ]


async def _subscribe(gw: Gateway, body: dict[str, Any]) -> str:
    response = await gw.client.post("/fhir/Subscription", json=body, headers=gw.integrator())
    assert response.status_code == 201, response.text
    assert response.headers["location"].endswith(f"/Subscription/{response.json()['id']}")
    return str(response.json()["id"])


def _status(bundle: dict[str, Any]) -> dict[str, Any]:
    """A notification's SubscriptionStatus, as name → value (or parts)."""
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "history"
    status = bundle["entry"][0]["resource"]
    assert status["resourceType"] == "Parameters"
    assert status["meta"]["profile"] == [BACKPORT_STATUS]
    values: dict[str, Any] = {}
    for parameter in status["parameter"]:
        value = [v for k, v in parameter.items() if k.startswith("value")]
        values[parameter["name"]] = value[0] if value else parameter.get("part")
    return values


async def _settled(gw: Gateway) -> None:
    """Run the notifier until nothing is left to fan out or send now."""
    notifier = _services(gw).notifier
    assert notifier is not None
    db = _services(gw).db
    for _ in range(200):
        await notifier.once()
        async with db.connect() as conn:
            left = (
                await conn.execute(
                    text(
                        "SELECT (SELECT COUNT(*) FROM subscription_event)"
                        " + (SELECT COUNT(*) FROM subscription_delivery)"
                    )
                )
            ).scalar_one()
        if not left:
            return
        await asyncio.sleep(0.05)
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT kind, attempts, resource_type, due_at FROM subscription_delivery")
            )
        ).all()
        subs = (await conn.execute(text("SELECT status, error FROM subscription"))).all()
    raise AssertionError(f"the notifier did not settle: {rows} {subs}")


async def test_a_new_lab_result_reaches_the_receiver(
    gw: Gateway, own_region: tuple[RegionStore, dict[str, Any]], receiver: Receiver, db: Database
) -> None:
    store, _ = own_region
    patient_id = await gw.patient_id()
    await grant(gw, patient_id, NORD_PROVIDER)
    before = await _observation_ids(gw, patient_id)
    sub_id = await _subscribe(gw, subscription(receiver.url, patient_id))

    headers, handshake = await receiver.next()
    assert _status(handshake)["type"] == "handshake"
    assert headers["authorization"] == "Bearer receiver-secret"
    assert headers["content-type"] == "application/fhir+json"
    for _ in range(1000):
        read = await gw.client.get(f"/fhir/Subscription/{sub_id}", headers=gw.integrator())
        if read.json()["status"] == "active":
            break
        await asyncio.sleep(0.01)
    assert read.json()["status"] == "active"
    assert "receiver-secret" not in read.text
    async with db.connect() as conn:
        stored = (await conn.execute(text("SELECT headers FROM subscription"))).scalar_one()
    assert b"receiver-secret" not in bytes(stored), "sealed at rest"

    new_id = _new_result(store, before, 1)
    await _refresh(gw, patient_id)
    _, notification = await receiver.next()
    status = _status(notification)
    assert status["type"] == "event-notification"
    assert status["topic"] == LAB
    assert status["events-since-subscription-start"] == "1"
    parts = {p["name"]: p for p in status["notification-event"]}
    assert parts["focus"]["valueReference"]["reference"].endswith(f"/Observation/{new_id}")
    resource = notification["entry"][1]["resource"]
    assert (resource["resourceType"], resource["id"]) == ("Observation", new_id)
    assert TEST_PERSON not in orjson.dumps(notification).decode()
    # The delivery is in the patient's access log, as a notify by the client.
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT actor_id, outcome FROM audit_entry WHERE action = 'notify'")
            )
        ).all()
    assert [tuple(r) for r in rows] == [("journal-app", "allowed")]
    # Only what changed: the results that were there before are not announced.
    status_answer = await gw.client.get(
        f"/fhir/Subscription/{sub_id}/$status", headers=gw.integrator()
    )
    assert status_answer.status_code == 200, status_answer.text
    assert _status_of(status_answer.json())["events-since-subscription-start"] == "1"


def _status_of(bundle: dict[str, Any]) -> dict[str, Any]:
    return _status(bundle | {"type": "history"})


async def test_a_withdrawn_consent_stops_deliveries(
    gw: Gateway, own_region: tuple[RegionStore, dict[str, Any]], receiver: Receiver, db: Database
) -> None:
    store, _ = own_region
    patient_id = await gw.patient_id()
    consent = await grant(gw, patient_id, NORD_PROVIDER)
    before = await _observation_ids(gw, patient_id)
    sub_id = await _subscribe(gw, subscription(receiver.url, patient_id, payload="id-only"))
    await receiver.next()  # the handshake
    await _settled(gw)

    await deactivate(gw, consent)
    _new_result(store, before, 2)
    await _refresh(gw, patient_id)
    await _settled(gw)

    assert receiver.received.empty(), "nothing delivered once consent is withdrawn"
    async with db.connect() as conn:
        rows = (
            await conn.execute(text("SELECT outcome FROM audit_entry WHERE action = 'notify'"))
        ).all()
    assert [r[0] for r in rows] == ["denied"]
    read = await gw.client.get(f"/fhir/Subscription/{sub_id}", headers=gw.integrator())
    assert read.json()["status"] == "active", "the subscription stays"
    # Nor is the hidden event counted: the count would tell of activity it may not see.
    status = await gw.client.get(f"/fhir/Subscription/{sub_id}/$status", headers=gw.integrator())
    assert status.status_code == 200, status.text
    (entry,) = status.json()["entry"]
    values = {p["name"]: p.get("valueString") for p in entry["resource"]["parameter"]}
    assert values["events-since-subscription-start"] == "0"


async def test_a_failing_receiver_is_tried_again_then_the_subscription_is_in_error(
    gw: Gateway, receiver: Receiver
) -> None:
    receiver.statuses = [500]
    sub_id = await _subscribe(gw, subscription(receiver.url))
    _, first = await receiver.next()
    _, again = await receiver.next()
    assert _status(first)["type"] == _status(again)["type"] == "handshake"
    read = await gw.client.get(f"/fhir/Subscription/{sub_id}", headers=gw.integrator())
    for _ in range(1000):
        read = await gw.client.get(f"/fhir/Subscription/{sub_id}", headers=gw.integrator())
        if read.json()["status"] == "active":
            break
        await asyncio.sleep(0.01)
    assert read.json()["status"] == "active"

    receiver.statuses = [503, 503, 503]
    other = await _subscribe(gw, subscription(receiver.url))
    for _ in range(3):
        await receiver.next()
    for _ in range(1000):
        read = await gw.client.get(f"/fhir/Subscription/{other}", headers=gw.integrator())
        if read.json()["status"] == "error":
            break
        await asyncio.sleep(0.01)
    assert read.json()["status"] == "error"
    assert read.json()["error"] == "the endpoint answered 503"
    status = await gw.client.get(f"/fhir/Subscription/{other}/$status", headers=gw.integrator())
    assert _status_of(status.json())["status"] == "error"


async def test_heartbeats_reach_an_idle_receiver(gw: Gateway, receiver: Receiver) -> None:
    heartbeat = [{"url": HEARTBEAT_PERIOD, "valueUnsignedInt": 1}]
    await _subscribe(gw, subscription(receiver.url, extension=heartbeat))
    _, handshake = await receiver.next()
    assert _status(handshake)["type"] == "handshake"
    _, beat = await receiver.next()
    assert _status(beat)["type"] == "heartbeat"
    assert len(beat["entry"]) == 1


async def test_only_the_client_that_made_it_sees_a_subscription(
    gw: Gateway, receiver: Receiver
) -> None:
    sub_id = await _subscribe(gw, subscription(receiver.url))
    other_provider = gw.integrator(provider="SE2321000016-OTHR")
    for method, path in [
        ("GET", f"/fhir/Subscription/{sub_id}"),
        ("GET", f"/fhir/Subscription/{sub_id}/$status"),
        ("DELETE", f"/fhir/Subscription/{sub_id}"),
    ]:
        response = await gw.client.request(method, path, headers=other_provider)
        assert response.status_code == 404, response.text
        assert response.json()["resourceType"] == "OperationOutcome"
    listed = await gw.client.get("/fhir/Subscription", headers=other_provider)
    assert listed.json()["total"] == 0
    mine = await gw.client.get("/fhir/Subscription", headers=gw.integrator())
    assert [e["resource"]["id"] for e in mine.json()["entry"]] == [sub_id]
    deleted = await gw.client.delete(f"/fhir/Subscription/{sub_id}", headers=gw.integrator())
    assert deleted.status_code == 200
    gone = await gw.client.get(f"/fhir/Subscription/{sub_id}", headers=gw.integrator())
    assert gone.status_code == 404


async def test_citizens_and_clinicians_cannot_subscribe(gw: Gateway, receiver: Receiver) -> None:
    for headers in (gw.citizen(), gw.clinician()):
        response = await gw.client.post(
            "/fhir/Subscription", json=subscription(receiver.url), headers=headers
        )
        assert response.status_code == 403, response.text
        assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "change",
    [
        {"resourceType": "Patient"},
        {"criteria": "Observation?code=1234"},
        {"channel": {"type": "websocket"}},
        {"channel": {"type": "rest-hook", "endpoint": "ftp://example.org/x"}},
        {"channel": {"type": "rest-hook", "endpoint": "http://example.org/hook"}},
        # A port no address can have: refused here, never left to fail every delivery.
        {"channel": {"type": "rest-hook", "endpoint": "https://127.0.0.1:99999/hook"}},
        # Credentials in the address would be stored and shown in the clear.
        {"channel": {"type": "rest-hook", "endpoint": "https://user:secret@e.org/h"}},
        {"channel": {"type": "rest-hook", "endpoint": "https://e.org/h", "header": ["Host: x"]}},
        {"channel": {"type": "rest-hook", "endpoint": "https://e.org/h", "header": "x"}},
        {
            "channel": {
                "type": "rest-hook",
                "endpoint": "https://e.org/h",
                "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": "everything"}]},
            }
        },
        {
            "channel": {
                "type": "rest-hook",
                "endpoint": "https://e.org/h",
                "extension": [{"url": HEARTBEAT_PERIOD, "valueUnsignedInt": -1}],
            }
        },
        {"_criteria": {"extension": [{"url": FILTER_CRITERIA, "valueString": "code=1"}]}},
    ],
)
async def test_bad_subscriptions_are_refused(
    gw: Gateway, receiver: Receiver, change: dict[str, Any]
) -> None:
    body = subscription(receiver.url) | change
    response = await gw.client.post("/fhir/Subscription", json=body, headers=gw.integrator())
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_not_json_is_refused(gw: Gateway) -> None:
    response = await gw.client.post(
        "/fhir/Subscription", content=b"{not json", headers=gw.integrator()
    )
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_loopback_and_http_endpoints_only_with_the_allow_list(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], receiver: Receiver
) -> None:
    port = receiver.server.url.rsplit(":", 1)[1]
    async with running_gateway(database_url, issuer, regions, dev_mode=True) as production:
        for endpoint in (receiver.url, f"https://127.0.0.1:{port}/hook"):
            response = await production.client.post(
                "/fhir/Subscription",
                json=subscription(endpoint),
                headers=production.integrator(),
            )
            assert response.status_code == 422, response.text
            assert response.json()["resourceType"] == "OperationOutcome"
            assert "127.0.0.1" not in response.text
    assert receiver.received.empty()


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.7/hook",
        "https://192.168.0.1/hook",
        "https://[fd00::1]/hook",
    ],
)
async def test_an_endpoint_inside_the_network_is_refused(gw: Gateway, endpoint: str) -> None:
    response = await gw.client.post(
        "/fhir/Subscription", json=subscription(endpoint), headers=gw.integrator()
    )
    assert response.status_code == 422, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert endpoint.split("/")[2] not in response.text


async def test_a_source_notification_delivers_without_a_read(
    database_url: str,
    issuer: IssuerKit,
    own_region: tuple[RegionStore, dict[str, Any]],
    regions: dict[str, Region],
    receiver: Receiver,
) -> None:
    store, source = own_region
    async with running_gateway(
        database_url,
        issuer,
        {},
        extra_sources=[source],
        cache_fresh_seconds=3600,  # no read would ask the region again
        dev_mode=True,
        callback_allowed_networks=[LOOPBACK_NETWORK],
        subscription_poll_seconds=0.05,
        rate_limit_enabled=False,
    ) as gw:
        patient_id = await gw.patient_id()
        await grant(gw, patient_id, NORD_PROVIDER)
        before = await _observation_ids(gw, patient_id)
        await _subscribe(gw, subscription(receiver.url, patient_id, payload="empty"))
        await receiver.next()  # the handshake
        _new_result(store, before, 3)
        response = await gw.client.post(
            "/engagement/notifications",
            json={
                "identifier": {
                    "system": "http://electronichealth.se/identifier/personnummer",
                    "value": TEST_PERSON,
                }
            },
            headers={"Authorization": f"Bearer {regions['nord'].spec.token}-notify"},
        )
        assert response.status_code == 202, response.text
        _, notification = await receiver.next()
    status = _status(notification)
    assert status["type"] == "event-notification"
    assert [p["name"] for p in status["notification-event"]] == ["event-number", "timestamp"]
    assert len(notification["entry"]) == 1, "an empty payload names no resource"


async def test_the_capability_statement_lists_the_topics(gw: Gateway) -> None:
    response = await gw.client.get("/fhir/metadata")
    assert response.status_code == 200
    (subscription,) = [
        r for r in response.json()["rest"][0]["resource"] if r["type"] == "Subscription"
    ]
    topics = {e["valueCanonical"] for e in subscription["extension"]}
    assert LAB in topics
    assert len(topics) == 3
    assert {"create", "read", "delete", "search-type"} <= {
        i["code"] for i in subscription["interaction"]
    }
    assert [o["name"] for o in subscription["operation"]] == ["status"]


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"resourceType": "Subscription", "criteria": ["x"]},
        {
            "resourceType": "Subscription",
            "criteria": LAB,
            "channel": {"type": "rest-hook", "endpoint": "https://[::1"},
        },
        {
            "resourceType": "Subscription",
            "criteria": LAB,
            "channel": {
                "type": "rest-hook",
                "endpoint": "https://e.org/h",
                "extension": 5,
                "_payload": {"extension": "x"},
                "payload": ["x"],
            },
        },
        {
            "resourceType": "Subscription",
            "criteria": LAB,
            "_criteria": {"extension": [{"url": FILTER_CRITERIA, "valueString": 5}]},
            "channel": {"type": "rest-hook", "endpoint": "https://e.org/h"},
        },
    ],
)
async def test_odd_bodies_are_400(gw: Gateway, body: Any) -> None:
    response = await gw.client.post("/fhir/Subscription", json=body, headers=gw.integrator())
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_a_changed_appointment_reaches_only_the_appointment_topic(
    gw: Gateway, own_region: tuple[RegionStore, dict[str, Any]], receiver: Receiver
) -> None:
    store, _ = own_region
    patient_id = await gw.patient_id()
    await grant(gw, patient_id, NORD_PROVIDER)
    await _refresh(gw, patient_id)  # every type cached: the next refresh asks for changes
    response = await gw.client.get(f"/fhir/Appointment?patient={patient_id}", headers=gw.citizen())
    appointment_id = response.json()["entry"][0]["resource"]["id"]
    lab = await _subscribe(gw, subscription(receiver.url, patient_id, payload="id-only"))
    visits = subscription(receiver.url, patient_id, payload="id-only")
    visits["criteria"] = "https://samlad.se/fhir/SubscriptionTopic/appointment"
    visits_id = await _subscribe(gw, visits)
    await receiver.next()
    await receiver.next()  # the two handshakes
    await _settled(gw)

    stored = store.read("Appointment", appointment_id.removeprefix("region-own."))
    assert stored is not None
    changed = orjson.loads(stored.body)
    changed["comment"] = "Ta med remissen"
    changed["meta"]["lastUpdated"] = datetime.now(UTC).isoformat()
    store.put(changed)
    await _refresh(gw, patient_id)
    await _settled(gw)

    _, notification = receiver.received.get_nowait()
    status = _status(notification)
    assert status["subscription"]["reference"].endswith(f"/Subscription/{visits_id}")
    assert notification["entry"][1]["fullUrl"].endswith(f"/Appointment/{appointment_id}")
    assert "resource" not in notification["entry"][1], "id-only"
    assert receiver.received.empty(), f"nothing for the lab-result subscription {lab}"
