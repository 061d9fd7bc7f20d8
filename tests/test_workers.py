"""`gateway.run.workers`: several processes on one port, each with its own socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI

from gateway.run.workers import QUICK_DEATH_SECONDS, restart_pause
from tests.gateway.test_clients import free_port
from tests.test_serve import _children

#: How long a test waits for workers to start: a guard against a hang, not a measure of
#: speed, so generous enough for a heavily loaded machine.
START_SECONDS = 60.0


def pid_app() -> FastAPI:
    """Answers with the process id of the worker that serves it."""
    app = FastAPI()

    @app.get("/pid")
    async def pid() -> dict[str, int]:
        return {"pid": os.getpid()}

    return app


def failing_later_app() -> FastAPI:
    """Starts while the file named by ``FAIL_MARKER`` does not exist; while it does, fails
    to start and adds a line to the file named by ``FAILURES``."""
    if Path(os.environ["FAIL_MARKER"]).exists():
        with Path(os.environ["FAILURES"]).open("a") as failures:
            failures.write(f"{os.getpid()}\n")
        return failing_app()
    return pid_app()


def failing_app() -> FastAPI:
    """An app whose start-up fails."""

    async def lifespan(app: FastAPI) -> Iterator[None]:  # type: ignore[misc]
        raise RuntimeError("start-up failed")
        yield

    return FastAPI(lifespan=lifespan)  # type: ignore[arg-type]


@contextmanager
def workers(
    factory: str, count: int = 2, port: int | None = None, **env: str
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = port or free_port()
    command = ["-m", "gateway.run.workers", factory, "--workers", str(count), "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, *command, "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()  # its workers stop when it is gone
            process.communicate()
            raise


def serving(port: int, process: subprocess.Popen[str], count: int = 2) -> set[int]:
    """The pids of the workers answering on ``port``, once ``count`` of them do."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            pids = set(burst(port, 16))
        except OSError:
            pids = set()
        if len(pids) >= count:
            return pids
        time.sleep(0.2)
    raise AssertionError("the workers did not come up")


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def burst(port: int, connections: int) -> list[int]:
    """Open ``connections`` at once, then ask each which worker holds it."""
    sockets = [
        socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(connections)
    ]
    pids = []
    try:
        for sock in sockets:
            sock.sendall(b"GET /pid HTTP/1.1\r\nHost: test\r\n\r\n")
        for sock in sockets:
            answer = b""
            while not answer.endswith(b"}"):
                part = sock.recv(4096)
                if not part:
                    raise ConnectionError("closed before the answer")
                answer += part
            pids.append(int(answer.rsplit(b":", 1)[1].rstrip(b"}")))
    finally:
        for sock in sockets:
            sock.close()
    return pids


def test_a_burst_of_connections_is_spread_over_the_workers() -> None:
    with workers("tests.test_workers:pid_app") as (process, port):
        started = serving(port, process)
        # Kept-alive connections opened at once (a proxy filling its pool): with one
        # shared socket the first worker to wake takes them all.
        answered = burst(port, 32)
    assert set(answered) == started
    assert min(answered.count(pid) for pid in started) >= 4


def test_a_worker_that_dies_is_replaced_and_sigterm_stops_them_all() -> None:
    with workers("tests.test_workers:pid_app") as (process, port):
        first = serving(port, process)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + START_SECONDS
        while (now := serving(port, process)) & {victim} or len(now) < 2:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.2)
        assert victim not in _children(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
    assert not any(_running(pid) for pid in now), "every worker stopped"


def test_a_start_up_failure_stops_the_server() -> None:
    with workers("tests.test_workers:failing_app") as (process, _):
        assert process.wait(timeout=60) == 1


def test_a_port_held_by_another_program_stops_the_server() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        command = ["gateway.run.workers", "tests.test_workers:pid_app", "--port", str(port)]
        process = subprocess.run(
            [sys.executable, "-m", *command],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert process.returncode == 1
    assert "cannot listen on 127.0.0.1" in process.stderr


def test_a_second_server_on_the_port_is_refused_and_the_first_serves_on() -> None:
    with workers("tests.test_workers:pid_app") as (first, port):
        serving_pids = serving(port, first)
        with workers("tests.test_workers:pid_app", port=port) as (second, _):
            assert second.wait(timeout=60) == 1
            output = second.communicate()[0]
        assert "cannot listen on 127.0.0.1" in output
        assert set(burst(port, 16)) == serving_pids


def test_workers_stop_when_their_supervisor_is_killed() -> None:
    with workers("tests.test_workers:pid_app") as (process, port):
        pids = serving(port, process)
        process.kill()  # no chance to stop them itself
        process.wait(timeout=10)
        deadline = time.monotonic() + 30
        while any(_running(pid) for pid in pids):
            assert time.monotonic() < deadline, "a worker outlived its supervisor"
            time.sleep(0.1)


def test_a_replacement_that_fails_to_start_is_tried_again(tmp_path: Path) -> None:
    marker, failures = tmp_path / "fail", tmp_path / "failures"
    env = {"FAIL_MARKER": str(marker), "FAILURES": str(failures)}
    with workers("tests.test_workers:failing_later_app", **env) as (process, port):
        first = serving(port, process)
        marker.touch()  # from now on a worker fails to start (say, the database is down)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        # Wait for the events, not for a time: how long a start takes is the machine's.
        # A second failed start proves that the first did not stop the server.
        deadline = time.monotonic() + 2 * START_SECONDS
        while len(_pids_written(failures)) < 2:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "no replacement was tried twice"
            time.sleep(0.2)
        assert set(burst(port, 8)) == first - {victim}, "the other worker serves on"
        marker.unlink()
        now = serving(port, process)
        assert victim not in now


def _pids_written(path: Path) -> list[int]:
    """The pids written one a line to ``path``, none if it does not exist yet."""
    try:
        return [int(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return []


def test_a_worker_that_never_started_is_replaced_after_a_pause() -> None:
    # However long failing took: on a loaded machine a start-up that fails (the database
    # is down) can take longer than QUICK_DEATH_SECONDS, and must not be retried at once.
    for lived in (0.1, QUICK_DEATH_SECONDS - 0.1, QUICK_DEATH_SECONDS + 0.1, 60.0):
        assert restart_pause(started=False, lived=lived) == QUICK_DEATH_SECONDS


def test_a_started_worker_is_replaced_after_a_pause_only_if_it_died_soon() -> None:
    assert restart_pause(started=True, lived=QUICK_DEATH_SECONDS - 0.1) == QUICK_DEATH_SECONDS
    assert restart_pause(started=True, lived=QUICK_DEATH_SECONDS + 0.1) == 0.0
