"""Run several simulated regions in the current event loop (for ``samlad demo`` and the CLI)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

import uvicorn
from starlette.types import ASGIApp

from simregions.app import create_app
from simregions.behaviour import Behaviour
from simregions.legacy.app import create_legacy_app
from simregions.legacy.spec import LegacyRegionSpec
from simregions.regions import RegionSpec
from simregions.server import LOOPBACK, bind_socket, make_server


def _app_for(spec: RegionSpec | LegacyRegionSpec, behaviour: Behaviour) -> ASGIApp:
    """The FHIR app for a FHIR region, the SOAP app for a legacy one (Region Öst)."""
    if isinstance(spec, LegacyRegionSpec):
        return create_legacy_app(spec, behaviour)
    return create_app(spec, behaviour)


async def serve_regions(
    specs: Sequence[RegionSpec | LegacyRegionSpec],
    ports: Sequence[int | socket.socket] | None = None,
    behaviours: Sequence[Behaviour] | None = None,
    *,
    host: str = LOOPBACK,
    started: asyncio.Event | None = None,
) -> None:
    """Serve each region on its port until cancelled, then shut the servers down cleanly.

    ``ports`` defaults to each region's ``default_port``; an entry may also be a socket the
    caller bound already (e.g. with :func:`simregions.server.bind_socket` on port 0, to learn
    the port before serving);
    ``behaviours`` to a fresh :class:`Behaviour` each, so pass your own to steer faults from
    the caller. ``started`` is set once every server accepts connections. All ports are
    bound before any server starts, so a port conflict raises ``OSError`` straight away.
    """
    wanted = list(ports) if ports is not None else [spec.default_port for spec in specs]
    behaviours = list(behaviours) if behaviours is not None else [Behaviour() for _ in specs]
    if not len(specs) == len(wanted) == len(behaviours):
        raise ValueError("specs, ports and behaviours must have the same length")
    sockets: list[socket.socket] = []
    try:
        for port in wanted:
            sockets.append(port if isinstance(port, socket.socket) else bind_socket(host, port))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    servers = [
        make_server(_app_for(spec, behaviour))
        for spec, behaviour in zip(specs, behaviours, strict=True)
    ]
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]), name=f"simregion-{spec.id}")
        for server, sock, spec in zip(servers, sockets, specs, strict=True)
    ]
    try:
        if started is not None:
            await _wait_started(servers, tasks)
            started.set()
        # asyncio.wait, unlike gather, leaves the servers running when this task is
        # cancelled, so they can be shut down gracefully below.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.wait(tasks)
        for sock in sockets:
            sock.close()
    for task in tasks:
        task.result()  # a server that stopped on its own: say why


async def _wait_started(servers: list[uvicorn.Server], tasks: list[asyncio.Task[None]]) -> None:
    while not all(server.started for server in servers):
        failed = [task for task in tasks if task.done()]
        if failed:
            await failed[0]  # re-raises why the server stopped
            raise RuntimeError("a simulated region stopped before it started")
        await asyncio.sleep(0.01)
