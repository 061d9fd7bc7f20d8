"""`samlad demo` as a subprocess: free ports, waiting for its banner, and Ctrl-C.

The process runs in a session of its own so that stopping it reaches everything it
started (``make`` and the demo under it), as Ctrl-C in a terminal does.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from simregions.regions import DEFAULT_REGIONS

#: The FHIR regions, then Region Öst's legacy system.
REGION_PORTS = len(DEFAULT_REGIONS) + 1
#: The banner's last line.
BANNER_END = "Ctrl-C stops everything."


def _outside_the_ephemeral_range() -> range:
    """Ports the kernel never hands out by itself (to a bind to port 0 or to an outgoing
    connection), so that one found free stays free until the demo binds it, whatever
    runs beside (another test worker opening connections by the hundred)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(10_000, max(low, 11_000))


def _all_free(ports: range) -> bool:
    probes: list[socket.socket] = []
    try:
        for port in ports:
            probe = socket.socket()
            probes.append(probe)
            probe.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        for probe in probes:
            probe.close()
    return True


def free_demo_ports() -> tuple[int, int]:
    """A free gateway port and the first of :data:`REGION_PORTS` free consecutive ones
    after it, from outside the kernel's ephemeral range."""
    candidates = _outside_the_ephemeral_range()
    for _ in range(100):
        port = random.randrange(candidates.start, candidates.stop - REGION_PORTS - 1)
        if _all_free(range(port, port + REGION_PORTS + 1)):
            return port, port + 1
    raise RuntimeError("no free port range")


def demo_environment() -> dict[str, str]:
    """This process's environment without settings or make's job server that would leak in."""
    leaks = ("SAMLAD_", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    return {k: v for k, v in os.environ.items() if not k.startswith(leaks)}


class DemoProcess:
    """A running demo: its banner, the values it printed, and how to stop it."""

    def __init__(self, command: Sequence[str], cwd: Path, *, timeout: float = 90) -> None:
        self.cwd = cwd
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            list(command),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=demo_environment(),
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.banner = self._wait_for_banner(timeout)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def _wait_for_banner(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            output = "".join(self.lines)
            start = output.find("Samlad demo is running")
            if start >= 0 and BANNER_END in output[start:]:
                return output[start : output.index(BANNER_END, start) + len(BANNER_END)]
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the demo did not start:\n{self.output}")

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def exports(self) -> dict[str, str]:
        """The ``export NAME=value`` lines of the banner."""
        return dict(re.findall(r"^export (\w+)=(\S+)$", self.banner, re.MULTILINE))

    @property
    def fhir_base_url(self) -> str:
        match = re.search(r"FHIR base URL\s+(http://\S+)", self.banner)
        assert match, self.banner
        return match.group(1)

    def stop(self) -> int:
        """Ctrl-C, as a person would: SIGINT to the whole group; kill only if it stays."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        code = self.process.wait()
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code
