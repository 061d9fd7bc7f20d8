"""Several server processes on one port, each with its own listening socket.

uvicorn's own ``--workers`` shares one listening socket between its processes, and
asyncio accepts every connection waiting on a socket at once: a burst of new connections
(a load balancer or proxy opening its pool, clients reconnecting after a restart) lands on
whichever worker woke first, and stays there for as long as it is kept alive, so one core
works while the others idle. Here each worker binds the port itself with
``SO_REUSEPORT``, and the kernel spreads new connections evenly over the workers' sockets
(Linux; only processes of the same user may join the group).

The parent supervises: it starts the workers, restarts one that dies, and on SIGINT or
SIGTERM stops them all (each finishes its open requests, as uvicorn does on its own). A
worker that fails at start-up stops the whole server, rather than being restarted in a
loop.

    python -m gateway.workers MODULE:FACTORY --workers N [--host H] [--port P]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

log = logging.getLogger("samlad.workers")

#: uvicorn's exit code when the application's start-up failed.
STARTUP_FAILURE = 3
#: A worker that dies sooner than this after it started is restarted only after a pause.
QUICK_DEATH_SECONDS = 5.0
#: How long stopping workers may take to finish their open requests before being killed.
STOP_GRACE_SECONDS = 30.0


def listening_socket(host: str, port: int) -> socket.socket:
    """``host:port`` bound for one worker, in the port's ``SO_REUSEPORT`` group."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(factory: str, host: str, port: int, log_level: str) -> None:
    """One worker process: its own socket, one uvicorn server, the app from ``factory``."""
    import uvicorn

    try:
        sock = listening_socket(host, port)
    except OSError as exc:  # e.g. the port is held by another program
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror)
        sys.exit(STARTUP_FAILURE)
    config = uvicorn.Config(
        factory,
        factory=True,
        access_log=False,  # the gateway's own request log leaves out paths and queries
        log_level=log_level.lower(),
    )
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """Keeps ``workers`` processes of ``_worker`` running until told to stop."""

    def __init__(self, factory: str, host: str, port: int, workers: int, log_level: str) -> None:
        self._args = (factory, host, port, log_level)
        self._count = workers
        self._context = multiprocessing.get_context("spawn")
        self._running: dict[int, tuple[BaseProcess, float]] = {}
        self._stopping = False

    def _start(self) -> None:
        process = self._context.Process(target=_worker, args=self._args, daemon=False)
        process.start()
        assert process.pid is not None
        self._running[process.sentinel] = (process, time.monotonic())

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        for process, _ in self._running.values():
            if process.is_alive() and process.pid is not None:
                process.terminate()

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM (0), or until a worker fails at start-up (1)."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._stop)
        for _ in range(self._count):
            self._start()
        failed = False
        while self._running and not self._stopping:
            for sentinel in wait(list(self._running), timeout=1.0):
                assert isinstance(sentinel, int)  # a process sentinel
                process, started = self._running.pop(sentinel)
                process.join()
                if self._stopping:
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("a worker failed to start; stopping the server")
                    failed = True
                    self._stop(signal.SIGTERM, None)
                    continue
                log.warning(
                    "worker %s exited (%s); starting another", process.pid, process.exitcode
                )
                if time.monotonic() - started < QUICK_DEATH_SECONDS:
                    time.sleep(QUICK_DEATH_SECONDS)
                self._start()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process, _ in self._running.values():
            process.join(max(deadline - time.monotonic(), 0.0))
            if process.is_alive():
                process.kill()
                process.join()
        return 1 if failed else 0


def serve(factory: str, *, host: str, port: int, workers: int, log_level: str = "info") -> int:
    """Run ``workers`` processes serving the app ``factory`` (``module:callable``) on
    ``host:port``; returns the exit status."""
    return Supervisor(factory, host, port, workers, log_level).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("factory", help="module:callable returning the ASGI app")
    parser.add_argument("--workers", type=int, default=2)
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
