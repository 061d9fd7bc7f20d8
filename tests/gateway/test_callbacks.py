"""Where the gateway may push to: a notice webhook or a subscription endpoint naming (or
resolving to) an address inside the network is refused when it is set, and again at
delivery, after the name is resolved, whatever was accepted before; the configured
allow-list (``callback_allowed_networks``) lets the tests' receivers on loopback in."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.access.callbacks import CallbackRefused, CallbackRule, callback_client, networks
from gateway.access.notice_channels import Channels, DeliveryFailed, message_for
from gateway.errors import BadRequest, Unprocessable
from gateway.notice_config import NoticeConfig
from simregions.server import RunningServer, serve_in_thread

pytestmark = pytest.mark.anyio

LOOPBACK = CallbackRule(networks(["127.0.0.0/8", "::1"]))
INSIDE = [
    "https://127.0.0.1/hook",
    "https://127.8.9.10:8443/hook",
    "https://10.1.2.3/hook",
    "https://172.16.0.1/hook",
    "https://172.31.255.254/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://0.0.0.0/hook",
    "https://[::1]/hook",
    "https://[fc00::1]/hook",
    "https://[fd12:3456::1]/hook",
    "https://[fe80::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://localhost/hook",  # a name resolving to loopback
]


@pytest.fixture
def hook() -> Iterator[tuple[RunningServer, queue.Queue[dict[str, Any]]]]:
    got: queue.Queue[dict[str, Any]] = queue.Queue()

    async def receive(request: Request) -> Response:
        got.put({"host": request.headers.get("host"), "body": await request.body()})
        return Response(status_code=204)

    with serve_in_thread(Starlette(routes=[Route("/hook", receive, methods=["POST"])])) as server:
        yield server, got


@pytest.mark.parametrize("url", INSIDE)
async def test_an_address_inside_is_refused_when_set(url: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        await CallbackRule().check(url, "webhook")
    assert refused.value.status == 422
    assert "127." not in refused.value.message
    assert "169.254" not in refused.value.message


async def test_public_https_is_taken_and_http_only_where_allowed() -> None:
    assert await CallbackRule().check("https://93.184.215.14/h", "webhook")
    # A name that does not resolve now is taken: every delivery checks it again.
    assert await CallbackRule().check("https://receiver.invalid/h", "webhook")
    for url in ("http://93.184.215.14/h", "http://receiver.invalid/h", "ftp://e.org/x"):
        with pytest.raises(BadRequest):
            await CallbackRule().check(url, "webhook")
    with pytest.raises(Unprocessable):  # loopback over http, without the allow-list
        await CallbackRule().check("http://127.0.0.1:8080/h", "webhook")
    assert await LOOPBACK.check("http://127.0.0.1:8080/h", "webhook")
    assert await LOOPBACK.check("http://localhost:8080/h", "webhook")
    with pytest.raises(Unprocessable):  # the allow-list names loopback, nothing else
        await LOOPBACK.check("https://10.0.0.1/h", "webhook")


def test_the_allow_list_takes_networks_only() -> None:
    with pytest.raises(ValueError, match="does not appear to be"):
        networks(["localhost"])
    assert networks(["10.0.0.1", "::1"])[0].num_addresses == 1


async def test_delivery_resolves_again_and_refuses_an_address_inside(
    hook: tuple[RunningServer, queue.Queue[dict[str, Any]]],
) -> None:
    """What was stored (here: never checked) is checked at every delivery: the name
    ``localhost`` resolves to loopback, which is not allowed, so nothing is sent."""
    server, got = hook
    port = server.url.rsplit(":", 1)[1]
    async with callback_client(CallbackRule()) as client:
        for url in (f"http://localhost:{port}/hook", f"http://127.0.0.1:{port}/hook"):
            with pytest.raises(CallbackRefused):
                await client.post(url, content=b"{}")
    assert got.empty()


async def test_delivery_connects_to_the_address_checked_with_the_name_as_host(
    hook: tuple[RunningServer, queue.Queue[dict[str, Any]]],
) -> None:
    server, got = hook
    port = server.url.rsplit(":", 1)[1]
    async with callback_client(LOOPBACK) as client:
        answer = await client.post(f"http://localhost:{port}/hook", content=b"{}")
    assert answer.status_code == 204
    assert got.get_nowait()["host"] == f"localhost:{port}"


async def test_a_notice_webhook_inside_fails_to_deliver(
    hook: tuple[RunningServer, queue.Queue[dict[str, Any]]],
) -> None:
    server, got = hook
    message = message_for("access", "https://samlad.example/app/")
    async with callback_client(CallbackRule()) as client:
        channels = Channels(NoticeConfig(), client)
        with pytest.raises(DeliveryFailed):
            await channels.send_webhook(server.url + "/hook", message)
    assert got.empty()
    async with callback_client(LOOPBACK) as client:
        await Channels(NoticeConfig(), client).send_webhook(server.url + "/hook", message)
    assert got.get_nowait()["body"]
