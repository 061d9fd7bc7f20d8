"""Run ASGI apps as real HTTP servers on loopback: in a background thread or in the loop.

An app may expose a ``connection_gate(target) -> bool`` method (the simulated regions do):
the server then asks it about every request line it receives and closes the connection,
without any response, when the gate says so. That is how a region plays "down".
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpProtocol
except ImportError:  # pragma: no cover - uvicorn without httptools falls back to h11
    from uvicorn.protocols.http.h11_impl import (  # type: ignore[assignment]
        H11Protocol as _HttpProtocol,
    )

LOOPBACK = "127.0.0.1"

#: Decides from a request target ("/path?query") whether to drop the connection unanswered.
ConnectionGate = Callable[[str], bool]


def _request_target(data: bytes) -> str | None:
    """The target of the request line ``data`` starts with, or None if it starts none."""
    line_end = data.find(b"\r\n")
    if line_end < 0:
        return None
    parts = data[:line_end].split(b" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith(b"HTTP/1."):
        return None
    return parts[1].decode("latin-1")


def _gated_protocol(gate: ConnectionGate) -> type[_HttpProtocol]:
    class GatedHttpProtocol(_HttpProtocol):
        def data_received(self, data: bytes) -> None:
            target = _request_target(data)
            if target is not None and gate(target):
                self.transport.close()
                return
            super().data_received(data)

    return GatedHttpProtocol


def bind_socket(host: str = LOOPBACK, port: int = 0) -> socket.socket:
    """Bind a listening TCP socket; port 0 picks a free one."""
    # Name the protocol: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # IPPROTO_TCP, and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(app: ASGIApp, *, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for ``app``, honouring the app's ``connection_gate`` if it has one."""
    gate = getattr(app, "connection_gate", None)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        http=_gated_protocol(gate) if callable(gate) else "auto",
    )
    return uvicorn.Server(config)


@dataclass
class RunningServer:
    """A server started by :func:`serve_in_thread`."""

    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_in_thread(app: ASGIApp, *, host: str = LOOPBACK, port: int = 0) -> RunningServer:
    """Start ``app`` on ``host:port`` in a daemon thread and wait until it accepts."""
    sock = bind_socket(host, port)
    actual_port = sock.getsockname()[1]
    server = make_server(app)

    def run() -> None:
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=run, name=f"server-{actual_port}", daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        if not thread.is_alive():
            raise RuntimeError("server thread ended before it started")
        threading.Event().wait(0.01)
    else:
        server.should_exit = True
        raise RuntimeError("server did not start in time")
    return RunningServer(f"http://{host}:{actual_port}", actual_port, server, thread)


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, host: str = LOOPBACK, port: int = 0
) -> Iterator[RunningServer]:
    """Context manager form of :func:`start_in_thread`."""
    running = start_in_thread(app, host=host, port=port)
    try:
        yield running
    finally:
        running.stop()
