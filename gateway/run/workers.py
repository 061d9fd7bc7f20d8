"""Several server processes on one port, each with its own listening socket.

uvicorn's own ``--workers`` shares one listening socket between its processes, and
asyncio accepts every connection waiting on a socket at once: a burst of new connections
(a load balancer or proxy opening its pool, clients reconnecting after a restart) lands on
whichever worker woke first, and stays there for as long as it is kept alive, so one core
works while the others idle. Here each worker binds the port itself with
``SO_REUSEPORT``, and the kernel spreads new connections evenly over the workers' sockets
(Linux; only processes of the same user may join the group).

The parent supervises: it starts the workers, restarts one that dies (after a pause if
it never started its app or died soon after it started), and on SIGINT or SIGTERM stops
them all (each finishes its open requests, as uvicorn does on its own). If no worker has
started yet, a worker that fails to start (its configuration, its database, the port)
stops the whole server rather than being restarted in a loop; a replacement that fails to
start is tried again. Before anything starts the parent checks that no other program
listens on the port, so a second server cannot silently join the group, and a worker
whose parent is gone stops as on SIGTERM.

    python -m gateway.run.workers MODULE:FACTORY --workers N [--host H] [--port P]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from gateway.http.metrics import METRICS_DIR_VARIABLE

log = logging.getLogger("samlad.workers")

#: uvicorn's exit code when the application's start-up failed.
STARTUP_FAILURE = 3
#: A worker that dies sooner than this after it started is restarted only after a pause
#: of as long (see :func:`restart_pause`).
QUICK_DEATH_SECONDS = 5.0
#: How long stopping workers may take to finish their open requests before being killed.
STOP_GRACE_SECONDS = 30.0


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bound_socket(host: str, port: int) -> socket.socket:
    """``host:port`` bound for one worker, in the port's ``SO_REUSEPORT`` group. Bound
    only: the server listens once the app has started, so no connection is given to a
    worker that cannot answer it yet (or fails to start)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def forwarded_options(trusted_proxies: Sequence[str]) -> dict[str, Any]:
    """uvicorn's options for ``X-Forwarded-*`` headers: believed only from
    ``trusted_proxies`` (uvicorn's own default trusts loopback, so that any local client
    could name itself anyone with an invented header)."""
    return {
        "proxy_headers": bool(trusted_proxies),
        "forwarded_allow_ips": list(trusted_proxies),
    }


def restart_pause(started: bool, lived: float) -> float:
    """Seconds to wait before replacing a worker that ``lived`` seconds and had started
    its app or not. A pause if it never started (the database is down, say: on a slow
    machine failing takes longer than :data:`QUICK_DEATH_SECONDS`, and the next try
    would come at once) or died soon after it started, so that the workers do not spin."""
    return QUICK_DEATH_SECONDS if not started or lived < QUICK_DEATH_SECONDS else 0.0


def _worker(
    factory: str,
    host: str,
    port: int,
    log_level: str,
    trusted_proxies: tuple[str, ...],
    ready: Connection,
    alive: Connection,
) -> None:
    """One worker process: its own socket, one uvicorn server, the app from ``factory``.
    Says on ``ready`` when it has started, and stops (as on SIGTERM) when ``alive`` ends:
    the supervisor is gone."""
    import uvicorn

    try:
        sock = bound_socket(host, port)
    except OSError as exc:  # e.g. the port is held by another program
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror)
        sys.exit(STARTUP_FAILURE)

    def stop_with_the_supervisor() -> None:
        with contextlib.suppress(EOFError, OSError):
            alive.recv()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_with_the_supervisor, daemon=True).start()

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                with contextlib.suppress(OSError):  # the supervisor is gone: see alive
                    ready.send(True)

    config = uvicorn.Config(
        factory,
        factory=True,
        access_log=False,  # the gateway's own request log leaves out paths and queries
        log_level=log_level.lower(),
        **forwarded_options(trusted_proxies),
    )
    Server(config).run(sockets=[sock])


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    #: Readable once the worker has started (or has died).
    ready: Connection
    #: Held open while the supervisor lives: the worker stops when it closes.
    alive: Connection
    #: When its process was started (``time.monotonic()``), not its app.
    started_at: float
    started: bool = False
    #: Whether its ``ready`` pipe is still to be heard from.
    awaited: bool = True


class Supervisor:
    """Keeps ``workers`` processes of ``_worker`` running until told to stop."""

    def __init__(
        self,
        factory: str,
        host: str,
        port: int,
        workers: int,
        log_level: str,
        trusted_proxies: Sequence[str] = (),
        metrics_dir: str | None = None,
    ) -> None:
        self._args = (factory, host, port, log_level, tuple(trusted_proxies))
        self._metrics_dir = metrics_dir
        self._host, self._port = host, port
        self._count = workers
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        #: Whether any worker has started: until one has, a start-up failure is the
        #: server's (its configuration, its database), and stops it.
        self._served = False
        self._stopping = False

    def _start(self) -> None:
        ready_r, ready_w = self._context.Pipe(duplex=False)
        alive_r, alive_w = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker, args=(*self._args, ready_w, alive_r), daemon=False
        )
        process.start()
        ready_w.close()  # the worker's end: EOF here once it is gone
        alive_r.close()
        self._workers.append(_Worker(process, ready_r, alive_w, time.monotonic()))

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.terminate()

    def _port_is_free(self) -> bool:
        """Whether no other program listens on the port: a second server (or workers left
        over from one) would otherwise silently join its ``SO_REUSEPORT`` group."""
        with socket.socket(_family(self._host), socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self._host, self._port))
            except OSError as exc:
                log.error("cannot listen on %s:%d: %s", self._host, self._port, exc.strerror)
                return False
        return True

    def _hear(self, worker: _Worker) -> None:
        """Read what a worker said on its ``ready`` pipe: that it started, or nothing (it
        died first: end of file)."""
        worker.awaited = False
        with contextlib.suppress(EOFError, OSError):
            worker.started = bool(worker.ready.recv())
            self._served = True

    def _ended(self, worker: _Worker) -> bool:
        """Handle a worker that exited; False if the server must stop."""
        worker.process.join()
        self._forget_gauges(worker)
        if worker.awaited and worker.ready.poll():
            self._hear(worker)
        self._workers.remove(worker)
        worker.ready.close()
        worker.alive.close()
        if self._stopping:
            return True
        if not worker.started and not self._served:
            log.error("a worker failed to start; stopping the server")
            return False
        log.warning(
            "worker %s exited (%s); starting another", worker.process.pid, worker.process.exitcode
        )
        time.sleep(restart_pause(worker.started, time.monotonic() - worker.started_at))
        if not self._stopping:  # a signal may have come while waiting
            self._start()
        return True

    def _forget_gauges(self, worker: _Worker) -> None:
        """Drop a dead worker's per-process gauges (its counters keep counting)."""
        if self._metrics_dir is not None and worker.process.pid is not None:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(worker.process.pid, self._metrics_dir)  # type: ignore[no-untyped-call]

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM (0), or until the first workers fail to start or
        the port is taken (1)."""
        if not self._port_is_free():
            return 1
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._stop)
        for _ in range(self._count):
            if self._stopping:
                break
            self._start()
        failed = False
        while self._workers and not self._stopping:
            watched: list[Connection | int] = [w.process.sentinel for w in self._workers]
            watched += [w.ready for w in self._workers if w.awaited]
            # Start-up news first: a worker that started and then died at once counts as
            # started, whatever order the news came in.
            for ready in sorted(wait(watched, timeout=1.0), key=lambda r: isinstance(r, int)):
                worker = next(
                    (w for w in self._workers if ready in (w.ready, w.process.sentinel)), None
                )
                if worker is None:  # ended already, both its pipe and its process said so
                    continue
                if ready is worker.ready:
                    self._hear(worker)
                elif not self._ended(worker):
                    failed = True
                    self._stop(signal.SIGTERM, None)
        for worker in self._workers:  # also one started while the signal came
            if worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in self._workers:
            worker.process.join(max(deadline - time.monotonic(), 0.0))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        return 1 if failed else 0


def serve(
    factory: str,
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str = "info",
    trusted_proxies: Sequence[str] = (),
) -> int:
    """Run ``workers`` processes serving the app ``factory`` (``module:callable``) on
    ``host:port``; returns the exit status. ``X-Forwarded-*`` headers are believed only
    from ``trusted_proxies`` (see :func:`forwarded_options`).

    The run gets a fresh, private directory for prometheus-client's multiprocess files
    (named to the workers in :data:`METRICS_DIR_VARIABLE`), removed when it ends: left
    over from an earlier run, they would add its counts to this one's."""
    with tempfile.TemporaryDirectory(prefix="samlad-metrics-") as metrics_dir:
        os.environ[METRICS_DIR_VARIABLE] = metrics_dir
        try:
            return Supervisor(
                factory, host, port, workers, log_level, trusted_proxies, metrics_dir
            ).run()
        finally:
            os.environ.pop(METRICS_DIR_VARIABLE, None)


def positive(value: str) -> int:
    """An argparse type: a whole number of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("factory", help="module:callable returning the ASGI app")
    parser.add_argument("--workers", type=positive, default=2)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    return serve(
        args.factory,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
    )


if __name__ == "__main__":
    sys.exit(main())
