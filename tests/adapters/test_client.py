"""A source's HTTP client (``adapters.client.source_client``) against real servers on
loopback: what it keeps of httpx's behaviour (timeouts, decompression counted against the
cap, no redirects, no cookies, no proxy from the environment, the query sent as built),
what it says of its pool and of a request sent, and that its failures never carry the
URL, whose query may hold an identity number."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import ipaddress
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.client import PoolState, pool_state, source_client, tls_context
from adapters.errors import SourceProtocolError, SourceTimeout, SourceUnavailable
from adapters.transport import exchange
from simregions.server import RunningServer, serve_in_thread
from tests.gateway.conftest import TEST_PERSON

pytestmark = pytest.mark.anyio

#: Released by a test to let ``/held`` answer.
_release = threading.Event()


async def _echo(request: Request) -> Response:
    """The raw query and the Cookie header as they arrived, and a cookie set."""
    seen = f"{request.scope['query_string'].decode()}\n{request.headers.get('cookie', '-')}"
    response = Response(seen, media_type="text/plain")
    response.set_cookie("session", "abc")
    return response


async def _held(request: Request) -> Response:
    await asyncio.to_thread(_release.wait, 10)
    return Response("late")


async def _slow(request: Request) -> Response:
    await asyncio.sleep(5)
    return Response("too late")


async def _bomb(request: Request) -> Response:
    body = gzip.compress(b"{" + b" " * 100_000 + b"}")
    return Response(body, headers={"Content-Encoding": "gzip"}, media_type="application/json")


async def _gzipped(request: Request) -> Response:
    return Response(gzip.compress(b"hello"), headers={"Content-Encoding": "gzip"})


async def _redirect(request: Request) -> Response:
    return Response(status_code=302, headers={"Location": "http://127.0.0.1:9/elsewhere"})


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    routes = [
        Route("/echo", _echo),
        Route("/held", _held),
        Route("/slow", _slow),
        Route("/bomb", _bomb),
        Route("/gzipped", _gzipped),
        Route("/redirect", _redirect),
    ]
    with serve_in_thread(Starlette(routes=routes)) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    client = source_client(timeout=0.5, connect_timeout=0.5, max_connections=2)
    try:
        yield client
    finally:
        await client.aclose()


def _socket_server(
    handle: Callable[[socket.socket], None],
) -> tuple[socket.socket, threading.Thread]:
    """A server on loopback that hands every connection to ``handle``, then closes it;
    it stops when its listening socket is closed."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def _garbage_server() -> tuple[socket.socket, threading.Thread]:
    """A server that answers every connection with bytes that are not HTTP."""

    def answer(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"\x00\x01 this is not HTTP\r\n\r\n")

    return _socket_server(answer)


async def test_the_query_is_sent_as_built_and_no_cookie_is_kept(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    params = {"code": "http://loinc.org|718-7", "date": "ge2026-01-01T00:00:00+01:00"}
    request = client.build_request("GET", f"{server.url}/echo", params=params)
    built = request.url.query.decode()
    _, first = await exchange(client, request, "echo", limit=10_000)
    _, second = await exchange(
        client, client.build_request("GET", f"{server.url}/echo"), "echo", limit=10_000
    )
    assert first.decode() == f"{built}\n-"
    assert second.decode() == "\n-"  # the cookie set by the first answer is not sent


async def test_a_compressed_body_is_decompressed_and_capped_after(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    _, body = await exchange(
        client, client.build_request("GET", f"{server.url}/gzipped"), "gz", limit=100
    )
    assert body == b"hello"
    with pytest.raises(SourceProtocolError, match="larger than 4096 bytes"):
        await exchange(client, client.build_request("GET", f"{server.url}/bomb"), "b", limit=4096)
    state = pool_state(client)
    assert state is not None
    assert (state.in_use, state.waiting) == (0, 0)


async def test_a_redirect_is_not_followed(server: RunningServer, client: httpx.AsyncClient) -> None:
    with pytest.raises(SourceProtocolError, match="HTTP 302"):
        await exchange(client, client.build_request("GET", f"{server.url}/redirect"), "r", limit=99)


async def test_a_slow_answer_times_out_on_the_read_timeout(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    started = asyncio.get_running_loop().time()
    with pytest.raises(SourceTimeout, match="slow: timed out"):
        await exchange(client, client.build_request("GET", f"{server.url}/slow"), "slow", limit=99)
    # The 0.5 s read timeout, well before the source's 5 s (a bound, not a timing claim).
    assert asyncio.get_running_loop().time() - started < 4.5
    state = pool_state(client)
    assert state is not None
    assert (state.in_use, state.waiting) == (0, 0)


async def test_failures_never_carry_the_url(client: httpx.AsyncClient) -> None:
    """Refused, and answered with garbage: the error and every exception it was raised
    from name the call and the kind of failure, never the URL or its query."""
    closed = socket.create_server(("127.0.0.1", 0))
    refused_port = closed.getsockname()[1]
    closed.close()
    listener, thread = _garbage_server()
    garbage_port = listener.getsockname()[1]
    try:
        for port, problem in ((refused_port, "cannot connect"), (garbage_port, "broken HTTP")):
            url = f"http://127.0.0.1:{port}/fhir/Patient?identifier={TEST_PERSON}"
            with pytest.raises(SourceUnavailable, match=problem) as caught:
                await exchange(client, client.build_request("GET", url), "patient", limit=99)
            error: BaseException | None = caught.value
            while error is not None:
                assert TEST_PERSON not in str(error)
                assert "127.0.0.1" not in str(error)
                error = error.__cause__ or error.__context__
    finally:
        listener.close()
        thread.join(timeout=5)


async def test_proxy_variables_in_the_environment_are_not_used(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = source_client(timeout=2.0, connect_timeout=2.0, max_connections=1)
    try:
        request = client.build_request("GET", f"{server.url}/echo")
        status, _ = await exchange(client, request, "echo", limit=10_000)
    finally:
        await client.aclose()
    assert status == 200


async def test_sent_is_set_once_the_request_is_written_and_the_pool_says_what_it_holds(
    server: RunningServer,
) -> None:
    """While the source holds its answer: the request is known to be sent and its
    connection in use, a second request waits for the pool of one; afterwards both
    connections' worth are given back, one kept idle."""
    _release.clear()
    client = source_client(timeout=10.0, connect_timeout=2.0, max_connections=1)
    try:
        sent = asyncio.Event()
        request = client.build_request("GET", f"{server.url}/held")
        first = asyncio.create_task(exchange(client, request, "held", limit=99, sent=sent))
        async with asyncio.timeout(10):
            await sent.wait()
        assert not first.done()
        second = asyncio.create_task(
            exchange(client, client.build_request("GET", f"{server.url}/held"), "h", limit=99)
        )
        for _ in range(200):
            state = pool_state(client)
            if state is not None and state.waiting == 1:
                break
            await asyncio.sleep(0.01)
        assert pool_state(client) == PoolState(in_use=1, idle=0, waiting=1)
        _release.set()
        assert [await first, await second] == [(200, b"late"), (200, b"late")]
        assert pool_state(client) == PoolState(in_use=0, idle=1, waiting=0)
    finally:
        _release.set()
        await client.aclose()


async def test_a_closed_client_refuses_to_send(server: RunningServer) -> None:
    client = source_client(timeout=1.0, connect_timeout=1.0, max_connections=1)
    await client.aclose()
    with pytest.raises(RuntimeError):
        await client.get(f"{server.url}/echo")


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA signed, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Valid on any date, by OpenSSL's clock and ours (which a test may move): it is
        # refused only because no CA signed it.
        .not_valid_before(datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _tls_server(cert_file: Path, key_file: Path) -> tuple[socket.socket, threading.Thread]:
    """A server that offers TLS with the given certificate to every connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return _socket_server(lambda conn: context.wrap_socket(conn, server_side=True).close())


def _verifying_context(client: httpx.AsyncClient) -> ssl.SSLContext:
    # aiohttp keeps a connector's TLS context private.
    transport: Any = client._transport
    context: ssl.SSLContext = transport._session.connector._ssl
    return context


async def test_every_source_verifies_tls_with_one_context(tmp_path: Path) -> None:
    """A certificate no CA signed is refused by every source's client, and every client
    verifies with the same context (one parsed CA bundle for the process, not one per
    source: about 0.8 MB each)."""
    listener, thread = _tls_server(*_self_signed(tmp_path))
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/fhir/metadata"
    clients = [source_client(timeout=2.0, connect_timeout=2.0, max_connections=1) for _ in range(3)]
    try:
        for client in clients:
            with pytest.raises(SourceUnavailable, match="cannot connect"):
                await exchange(client, client.build_request("GET", url), "metadata", limit=99)
        contexts = {id(_verifying_context(client)) for client in clients}
        assert contexts == {id(tls_context())}
        assert tls_context().verify_mode is ssl.CERT_REQUIRED
        assert tls_context().check_hostname
    finally:
        for client in clients:
            await client.aclose()
        listener.close()
        thread.join(timeout=5)
