"""Run ASGI apps as real HTTP servers on loopback: in a background thread or in the loop."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

LOOPBACK = "127.0.0.1"


def bind_socket(host: str = LOOPBACK, port: int = 0) -> socket.socket:
    """Bind a listening TCP socket; port 0 picks a free one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(app: ASGIApp, *, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
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
