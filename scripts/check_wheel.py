"""A plain install of the built wheel starts `samlad demo` and answers /fhir/metadata.

Builds the wheel from a copy of the sources, installs it into a fresh venv with only the
runtime lock (requirements/runtime.txt, hashes required) and the wheel itself
(``--no-deps``), checks that no dev-extra package came with it, then starts
``samlad demo`` on free ports in a temporary folder, waits for ``/fhir/metadata`` to
answer 200 with a CapabilityStatement, finds the test person with the form-encoded
``POST Patient/_search`` (FastAPI's form bodies need python-multipart), asks for the web
app at ``/app/`` and the files its page names (the package data is in the wheel), stops the demo
with Ctrl-C (SIGINT) and checks that it and everything it started are gone.

Bounded in time (``--budget`` seconds in all, each step less); exits non-zero, with the
demo's log, on any failure. Run by ``make check-wheel`` (and so by ``make test``):

    python3 scripts/check_wheel.py --builder .venv/bin/python

``--builder`` is a Python with setuptools (the dev venv), used only to build the wheel;
the fresh venv is made by the Python that runs this script.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"
#: What the wheel is built from (the packages are those pyproject.toml includes).
SOURCES = ["pyproject.toml", "README.md", "LICENSE"]
PACKAGES = ["gateway", "adapters", "consent", "store", "fhir_profiles", "simregions", "webapp"]
#: The demo's simulated regions: three FHIR regions and Region Öst's legacy system.
REGION_PORTS = 4
TEST_PERSON = "191212121212"

STARTUP_SECONDS = 90.0
STOP_SECONDS = 20.0


class CheckFailed(Exception):
    pass


class Budget:
    """One deadline for the whole check; each step gets at most what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, cap: float) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise CheckFailed("out of time")
        return min(cap, remaining)


def step(title: str) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def timed() -> Iterator[None]:
        started = time.monotonic()
        print(f"check-wheel: {title} ...", flush=True)
        yield
        print(f"check-wheel: {title}: {time.monotonic() - started:.1f} s", flush=True)

    return timed()


def run(command: Sequence[str | Path], budget: Budget, cap: float) -> str:
    """Run a command in its own process group; on a time-out or an interruption the whole
    group is killed (pip and venv start processes of their own)."""
    shown = " ".join(map(str, command))
    process = subprocess.Popen(  # noqa: S603 - our own commands, no shell
        [str(part) for part in command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=budget.left(cap))
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"timed out after {exc.timeout:.0f} s: {shown}") from None
    finally:
        kill_group(process)  # all of it on a time-out or an interruption, else leftovers
    if process.returncode != 0:
        raise CheckFailed(f"exit {process.returncode}: {shown}\n{out}{err}")
    return out


def kill_group(process: subprocess.Popen[str]) -> None:
    """Kill what is left of the process group ``process`` leads, and reap ``process``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.returncode is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=5)


def copy_sources(target: Path) -> None:
    """A clean copy: an in-tree build would reuse (and ship) whatever build/ holds."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        shutil.copy2(ROOT / name, target / name)
    for name in PACKAGES:
        shutil.copytree(ROOT / name, target / name, ignore=ignore)


def build_wheel(builder: str, work: Path, budget: Budget) -> Path:
    source = work / "src"
    source.mkdir()
    copy_sources(source)
    dist = work / "dist"
    run(
        [builder, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", dist, source],
        budget, 300,
    )  # fmt: skip
    wheels = list(dist.glob("samlad-*.whl"))
    if len(wheels) != 1:
        raise CheckFailed(f"expected one samlad wheel, found {wheels}")
    return wheels[0]


def install(wheel: Path, work: Path, budget: Budget) -> Path:
    venv = work / "venv"
    run([sys.executable, "-m", "venv", venv], budget, 120)
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "install", "--quiet", "--require-hashes", "-r", RUNTIME_LOCK], budget, 600)
    run([*pip, "install", "--quiet", "--no-deps", wheel], budget, 120)
    try:
        run([*pip, "check"], budget, 60)
    except CheckFailed as exc:
        raise CheckFailed(f"{RUNTIME_LOCK.name} misses what the wheel needs: {exc}") from None
    installed = {
        normalise(item["name"])
        for item in json.loads(run([*pip, "list", "--format=json"], budget, 60))
    }
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    dev = {normalise(re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0])
           for req in extras["project"]["optional-dependencies"]["dev"]}  # fmt: skip
    if installed & dev:
        raise CheckFailed(f"dev packages in the plain install: {sorted(installed & dev)}")
    return venv


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def free_ports() -> tuple[int, int]:
    """A gateway port and the first of REGION_PORTS consecutive free ports, all distinct."""
    for _ in range(100):
        with socket.socket() as one, socket.socket() as two:
            one.bind(("127.0.0.1", 0))
            two.bind(("127.0.0.1", 0))
            port, base = one.getsockname()[1], two.getsockname()[1]
        if base + REGION_PORTS > 65000 or base <= port < base + REGION_PORTS:
            continue
        probes: list[socket.socket] = []
        try:
            for candidate in range(base, base + REGION_PORTS):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return port, base
    raise CheckFailed("no free ports")


def get_json(url: str, data: bytes | None = None, token: str | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    request = urllib.request.Request(url, data=data)  # noqa: S310 - http on loopback only
    request.add_header("Accept", "application/fhir+json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


class Demo:
    def __init__(self, venv: Path, folder: Path, budget: Budget) -> None:
        self.budget = budget
        self.port, self.base = free_ports()
        self.log_path = folder / "demo.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAMLAD_")}
        with self.log_path.open("wb") as log:
            # Its own session (process group): stopping it reaches all it started.
            self.process = subprocess.Popen(  # noqa: S603
                [str(venv / "bin" / "samlad"), "demo", "--port", str(self.port),
                 "--region-port-base", str(self.base)],
                cwd=folder, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
            )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}/fhir"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_metadata(self) -> float:
        started = time.monotonic()
        deadline = started + self.budget.left(STARTUP_SECONDS)
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CheckFailed(f"samlad demo exited with {self.process.returncode}")
            with contextlib.suppress(OSError, ValueError):
                status, body = get_json(f"{self.url}/metadata")
                if status == 200 and body.get("resourceType") == "CapabilityStatement":
                    return time.monotonic() - started
                last = f"status {status}, resourceType {body.get('resourceType')!r}"
            time.sleep(0.2)
        raise CheckFailed(f"/fhir/metadata did not answer a CapabilityStatement ({last})")

    def find_test_person(self) -> None:
        deadline = time.monotonic() + self.budget.left(30)
        while "More tokens:" not in self.log():  # the banner is printed once started
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise CheckFailed("the demo printed no banner")
            time.sleep(0.1)
        match = re.search(r"^export TOKEN=(\S+)$", self.log(), re.MULTILINE)
        if not match:
            raise CheckFailed("no token in the demo's banner")
        form = urllib.parse.urlencode(
            {"identifier": f"http://electronichealth.se/identifier/personnummer|{TEST_PERSON}"}
        ).encode()
        status, body = get_json(f"{self.url}/Patient/_search", form, match.group(1))
        found = [e.get("resource", {}).get("resourceType") for e in body.get("entry", [])]
        patients = [kind for kind in found if kind == "Patient"]
        if status != 200 or not patients:
            raise CheckFailed(f"POST Patient/_search: status {status}, {len(patients)} patients")

    def get_app(self) -> None:
        """The web app's page, and every script and style it names, from the wheel."""
        root = self.url.removesuffix("/fhir") + "/app/"
        with urllib.request.urlopen(root, timeout=10) as answer:  # noqa: S310 - loopback
            page = answer.read().decode()
            if answer.status != 200 or "<title>" not in page:
                raise CheckFailed(f"/app/: status {answer.status}, no page")
        files = re.findall(r'(?:src|href)="([^"]+)"', page)
        for name in [*files, "vendor/uplot/LICENSE"]:
            try:
                with urllib.request.urlopen(root + name, timeout=10) as answer:  # noqa: S310
                    answer.read()
            except urllib.error.HTTPError as exc:
                raise CheckFailed(f"/app/{name}: status {exc.code}") from None

    def stop(self) -> None:
        """Ctrl-C, as a person would; the demo and all it started must be gone in time."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            code = self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            raise CheckFailed(f"samlad demo did not stop within {STOP_SECONDS:.0f} s") from None
        if self.group_alive():
            self.kill()
            raise CheckFailed("samlad demo left processes behind")
        if code != 0 or "Samlad demo stopped." not in self.log():
            raise CheckFailed(f"samlad demo stopped with exit code {code}")

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--builder", required=True, help="a Python with setuptools")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds in all")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    def stop_on_signal(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # so that the cleanup below runs

    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)
    budget = Budget(args.budget)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="samlad-check-wheel-"))
    demo: Demo | None = None
    try:
        with step("build the wheel"):
            wheel = build_wheel(args.builder, work, budget)
        with step(f"fresh venv: {RUNTIME_LOCK.relative_to(ROOT)} and {wheel.name}"):
            venv = install(wheel, work, budget)
        folder = work / "run"
        folder.mkdir()
        with step("samlad demo answers /fhir/metadata"):
            demo = Demo(venv, folder, budget)
            waited = demo.wait_for_metadata()
            print(f"check-wheel: CapabilityStatement after {waited:.1f} s on {demo.url}")
            demo.find_test_person()
        with step("the web app at /app/"):
            demo.get_app()
        with step("stop it (SIGINT)"):
            demo.stop()
    except CheckFailed as exc:
        print(f"check-wheel: FAILED: {exc}", file=sys.stderr)
        if demo is not None:
            print(f"--- samlad demo's output ---\n{demo.log()}", file=sys.stderr)
        return 1
    finally:
        if demo is not None and (demo.process.poll() is None or demo.group_alive()):
            demo.kill()
        if args.keep:
            print(f"check-wheel: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"check-wheel: passed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
