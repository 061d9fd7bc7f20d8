"""``samlad serve`` in a process of its own, for tests of what only a real process shows
(several workers, several gateways on one database)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

SAMLAD = [sys.executable, "-m", "gateway.run.cli"]


@dataclass
class Served:
    process: subprocess.Popen[str]
    #: Everything it printed, once it has stopped.
    output: str = ""


@contextmanager
def serve(config: Path, port: int, *options: str, ready_within: float = 120) -> Iterator[Served]:
    """``samlad serve --config config [options]`` once it answers ``/healthz``; stopped
    with SIGINT afterwards (killed if it does not stop within a minute)."""
    process = subprocess.Popen(
        [*SAMLAD, "--log-level", "WARNING", "serve", "--config", str(config), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    served = Served(process)
    try:
        deadline = time.monotonic() + ready_within
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the gateway did not come up"
            time.sleep(0.2)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            served.output = process.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            served.output = process.communicate()[0]
