"""Chaos under load: many clinicians reading one record while a region hangs, a region
answers garbage, and PostgreSQL restarts; then idle, and the gateway must be whole again.

The gateway (``samlad serve``, one process, on a private PostgreSQL cluster started for
the run on a port of its own, never the shared server) and the three simulated FHIR
regions run as subprocesses on loopback. ``--clients`` clinicians (each with their own
HSA-id and token, all of Region Nord, with the patient's consent) read
``GET /fhir/Patient/{id}/$everything`` of the test person in a loop, as fast as answers
come, for ``--duration`` seconds in three equal phases:

a. Region Väst hangs on every request (``fault = timeout``);
b. Region Syd answers garbage on every request (``fault = malformed-json``);
c. PostgreSQL is restarted (``pg_ctl restart -m fast``) at the phase's start.

Meanwhile the citizen records a consent for a new care provider every
``--consent-interval`` seconds. Afterwards: every consent answered 201 must be in the
database and no other (none lost, none half-applied); the access log's chain must verify
and hold an ``everything`` entry for every 200. Then ``--idle`` seconds with no load,
after which one read must find every region ``ok``, and the gateway process must hold no
socket in CLOSE-WAIT (from ``/proc/<pid>/fd`` and ``/proc/net/tcp``). The gateway's RSS
is read after warm-up and after the idle time.

Prints, per phase: answers by status, how many 200s came within the deadline, how many
503s (each an OperationOutcome), how many answers came later than the deadline plus
``--grace`` or not at all, 500s, median and p95 latency, and what the 200s said of each
region.

    .venv/bin/python -m bench.bench_chaos [--clients 100] [--duration 60] [--idle 60]

Needs PostgreSQL's binaries (``/usr/lib/postgresql/*/bin``); run as root, the cluster
runs as the ``postgres`` user.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psycopg

from bench.harness import (
    CHECKPOINT_KEY,
    CLINICIAN_CARE_PROVIDER,
    PERSONNUMMER_SYSTEM,
    TEST_PERSON,
    Issuer,
    RunningRegion,
    consent_body,
    free_port,
    median,
    region_sources,
    source_status,
    start_gateway,
    start_regions,
)
from consent.checkpoints import CheckpointKey
from consent.verify import verify_command

DEADLINE = 5.0
CITIZEN_SCOPE = "patient/*.rs patient/Consent.cu"
#: The care providers the citizen grants consent to during the run (none exist elsewhere).
GRANTEE_PREFIX = "SE2321000016-C"
PHASES = (
    ("a: Väst hangs", "vast", {"fault": "timeout", "fault_rate": 1.0}),
    ("b: Syd answers garbage", "syd", {"fault": "malformed-json", "fault_rate": 1.0}),
    ("c: PostgreSQL restarts", None, {}),
)
#: /proc/net/tcp's state code for CLOSE-WAIT.
CLOSE_WAIT = "08"


# -- a private PostgreSQL cluster ----------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise SystemExit(f"{name} not found under /usr/lib/postgresql/*/bin")
    return found[-1]


def _as_postgres(args: Sequence[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


@dataclass
class Cluster:
    folder: Path
    port: int

    @property
    def data(self) -> str:
        return str(self.folder / "data")

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(  # noqa: S603 - PostgreSQL's own tool on our own folder
            _as_postgres([_pg_bin("pg_ctl"), "-D", self.data, *args]),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this run's own, on a free port; removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="samlad-chaos-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    cluster = Cluster(folder, free_port())
    subprocess.run(  # noqa: S603
        _as_postgres(
            [_pg_bin("initdb"), "-D", cluster.data, "--auth=trust", "-U", "postgres", "-E", "UTF8"]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    options = f"-p {cluster.port} -k {folder} -c listen_addresses=127.0.0.1"
    cluster.pg_ctl("-o", options, "-l", str(folder / "postgres.log"), "-w", "start")
    try:
        with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
            conn.execute('CREATE DATABASE "samlad"')
        yield cluster
    finally:
        with suppress(subprocess.CalledProcessError):
            cluster.pg_ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


# -- the load --------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    codes: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    on_time: int = 0
    clean_503: int = 0
    late: int = 0
    no_answer: int = 0
    region_status: dict[str, Counter[str]] = field(default_factory=dict)
    #: What the 503s' OperationOutcomes said.
    refusals: Counter[str] = field(default_factory=Counter)


@dataclass
class Run:
    patient_id: str
    grace: float
    phase: Phase
    stop: bool = False
    #: Consent ids answered 201, and how many attempts got something else.
    consents_created: list[str] = field(default_factory=list)
    consent_codes: Counter[int] = field(default_factory=Counter)


def _statuses(body: bytes) -> dict[str, str]:
    bundle = orjson.loads(body)
    statuses: dict[str, str] = {}
    for entry in bundle.get("entry", []):
        if entry.get("search", {}).get("mode") == "outcome":
            for issue in entry["resource"]["issue"]:
                values = source_status(issue)
                if values is not None:
                    statuses[values["source"]] = values["status"]
    return statuses


async def clinician(client: httpx.AsyncClient, token: str, run: Run) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/fhir/Patient/{run.patient_id}/$everything"
    while not run.stop:
        phase = run.phase
        started = time.perf_counter()
        try:
            response = await client.get(url, headers=headers)
        except httpx.TimeoutException:
            phase.no_answer += 1
            continue
        except httpx.TransportError:
            phase.no_answer += 1
            await asyncio.sleep(0.1)
            continue
        elapsed = time.perf_counter() - started
        phase.codes[response.status_code] += 1
        phase.latencies.append(elapsed)
        in_time = elapsed <= DEADLINE + run.grace
        if not in_time:
            phase.late += 1
        if response.status_code == 200:
            phase.on_time += in_time
            for source, status in _statuses(response.content).items():
                phase.region_status.setdefault(source, Counter())[status] += 1
        elif response.status_code == 503:
            outcome = orjson.loads(response.content)
            issue = (outcome.get("issue") or [{}])[0]
            phase.refusals[str(issue.get("diagnostics", issue.get("code", "?")))[:70]] += 1
            phase.clean_503 += in_time and outcome.get("resourceType") == "OperationOutcome"
            await asyncio.sleep(0.2)  # as a client told to come back would


async def consent_writer(
    client: httpx.AsyncClient, token: str, run: Run, interval: float, start: int
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    number = start
    while not run.stop:
        number += 1
        body = consent_body(run.patient_id, f"{GRANTEE_PREFIX}{number:05d}")
        try:
            response = await client.post("/fhir/Consent", json=body, headers=headers)
        except httpx.HTTPError:
            run.consent_codes[0] += 1
        else:
            run.consent_codes[response.status_code] += 1
            if response.status_code == 201:
                run.consents_created.append(str(response.json()["id"]))
        await asyncio.sleep(interval)


# -- what the gateway process holds ----------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sockets_by_state(pid: int, ports: dict[int, str]) -> Counter[tuple[str, str]]:
    """(state, peer) of the process's TCP sockets: peer is a region's name, ``postgres``,
    or ``other``; state ``CLOSE-WAIT`` or ``open``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    counted: Counter[tuple[str, str]] = Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] not in inodes:
                    continue
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                state = "CLOSE-WAIT" if fields[3] == CLOSE_WAIT else "open"
                counted[(state, ports.get(remote_port, "other"))] += 1
    return counted


# -- the run ---------------------------------------------------------------------------------


async def first_look(base: str, citizen: str) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=base, timeout=60.0) as client:
        headers = {"Authorization": f"Bearer {citizen}"}
        response = await client.post(
            "/fhir/Patient/_search",
            data={"identifier": f"{PERSONNUMMER_SYSTEM}|{TEST_PERSON}"},
            headers=headers,
        )
        response.raise_for_status()
        patient_id = next(
            e["resource"]["id"]
            for e in response.json()["entry"]
            if e["resource"]["resourceType"] == "Patient"
        )
        body = consent_body(patient_id, CLINICIAN_CARE_PROVIDER)
        granted = await client.post("/fhir/Consent", json=body, headers=headers)
        granted.raise_for_status()
        return patient_id, str(granted.json()["id"])


def print_phase(phase: Phase) -> None:
    total = sum(phase.codes.values()) + phase.no_answer
    lat = sorted(phase.latencies)
    p95 = lat[int(len(lat) * 0.95) - 1] if lat else 0.0
    codes = ", ".join(f"{code} x {n}" for code, n in sorted(phase.codes.items()))
    print(f"\n{phase.name}: {total} requests ({codes}; no answer {phase.no_answer})")
    print(f"  200 within the deadline: {phase.on_time}; clean 503s: {phase.clean_503}")
    print(f"  later than the deadline + grace, or none: {phase.late + phase.no_answer}")
    print(f"  500s: {phase.codes.get(500, 0)}")
    if lat:
        print(f"  latency median {median(lat):.2f} s, p95 {p95:.2f} s, max {lat[-1]:.2f} s")
    for reason, n in phase.refusals.most_common():
        print(f"  503 x {n}: {reason}")
    for source, statuses in sorted(phase.region_status.items()):
        print(f"  {source}: " + ", ".join(f"{s} {n}" for s, n in statuses.most_common()))


async def drive(args: argparse.Namespace, cluster: Cluster, folder: Path) -> None:
    log_dir = folder / "logs"
    log_dir.mkdir()
    regions: list[RunningRegion] = start_regions(log_dir)
    issuer = Issuer.create(folder)
    gateway = None
    try:
        url = cluster.url("samlad")
        gateway = start_gateway(
            "gateway",
            folder / "gateway",
            issuer,
            region_sources(regions, timeout=DEADLINE),
            log_dir,
            migrated=True,
            database_url=url,
            request_deadline=DEADLINE,
            rate_limit_enabled=False,
            cache_fresh_seconds=args.fresh_seconds,
        )
        pid = gateway.process.popen.pid
        citizen = issuer.token({"personnummer": TEST_PERSON, "scope": CITIZEN_SCOPE})
        ports = {region.port: region.spec.id for region in regions} | {cluster.port: "postgres"}
        base = f"http://127.0.0.1:{gateway.port}"
        patient_id, _ = await first_look(base, citizen)
        tokens = [
            issuer.clinician_token(hsa_id=f"SE2321009001-B{n:04d}") for n in range(args.clients)
        ]
        limits = httpx.Limits(max_connections=args.clients + 10)
        timeout = httpx.Timeout(DEADLINE + args.hang_after)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
            # Warm-up: connections open, the record cached once.
            for token in tokens[:3]:
                await client.get(
                    f"/fhir/Patient/{patient_id}/$everything",
                    headers={"Authorization": f"Bearer {token}"},
                )
            rss_before = rss_mb(pid)
            run = Run(patient_id, args.grace, Phase("warm-up"))
            phases = []
            loops = [asyncio.create_task(clinician(client, t, run)) for t in tokens]
            writer = asyncio.create_task(
                consent_writer(client, citizen, run, args.consent_interval, 0)
            )
            share = args.duration / len(PHASES)
            for name, region_id, behaviour in PHASES:
                phase = Phase(name)
                phases.append(phase)
                run.phase = phase
                region = next((r for r in regions if r.spec.id == region_id), None)
                if region is not None:
                    region.set_behaviour(behaviour)
                else:
                    await asyncio.to_thread(cluster.pg_ctl, "-m", "fast", "-w", "restart")
                await asyncio.sleep(share)
                if region is not None:
                    region.set_behaviour({"fault": "none"})
            run.stop = True
            await asyncio.gather(*loops, writer)
            for phase in phases:
                print_phase(phase)
            await check_afterwards(args, run, phases, cluster, client, tokens[0])
            print(f"\nwaiting {args.idle:.0f} s idle ...")
            await asyncio.sleep(args.idle)
            response = await client.get(
                f"/fhir/Patient/{patient_id}/$everything",
                headers={"Authorization": f"Bearer {tokens[0]}"},
            )
            statuses = _statuses(response.content) if response.status_code == 200 else {}
            print(f"after {args.idle:.0f} s idle: {response.status_code}, sources {statuses}")
            sockets = sockets_by_state(pid, ports)
            close_wait = {peer: n for (state, peer), n in sockets.items() if state == "CLOSE-WAIT"}
            open_ = {peer: n for (state, peer), n in sockets.items() if state == "open"}
            print(f"sockets in CLOSE-WAIT: {close_wait or 'none'}; open: {open_}")
            print(f"gateway RSS: {rss_before:.0f} MB after warm-up, {rss_mb(pid):.0f} MB after")
    finally:
        if gateway is not None:
            gateway.process.stop()
        for region in regions:
            region.process.stop()


async def check_afterwards(
    args: argparse.Namespace,
    run: Run,
    phases: list[Phase],
    cluster: Cluster,
    client: httpx.AsyncClient,
    token: str,
) -> None:
    """Consents written during the run against the database; the access log's chain."""
    codes = ", ".join(
        f"{code or 'no answer'} x {n}" for code, n in sorted(run.consent_codes.items())
    )
    with psycopg.connect(cluster.url("samlad")) as conn:
        stored = {
            row[0]
            for row in conn.execute(
                "SELECT id FROM consent_record WHERE grantee_hsa_id LIKE %s",
                (GRANTEE_PREFIX + "%",),
            )
        }
        logged = conn.execute(
            "SELECT count(*) FROM audit_entry WHERE action = 'everything'"
            " AND actor_kind = 'clinician'"
        ).fetchone()
    created = set(run.consents_created)
    print(f"\nconsents written during the run: {codes}")
    print(
        f"  201s in the database: {len(created & stored)} of {len(created)};"
        f" in the database without a 201: {len(stored - created)}"
    )
    answered = sum(p.codes.get(200, 0) for p in phases) + 3  # with the warm-up reads
    print(f"access log: {logged[0] if logged else 0} everything entries for {answered} 200s")
    print("audit chain: ", end="", flush=True)
    key = CheckpointKey.from_hex(CHECKPOINT_KEY).verify_key
    await verify_command(cluster.url("samlad"), key, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (≤ 600)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds idle afterwards")
    parser.add_argument("--grace", type=float, default=0.5, help="late: past deadline + this")
    parser.add_argument("--hang-after", type=float, default=10.0, help="client gives up")
    parser.add_argument("--consent-interval", type=float, default=0.1)
    parser.add_argument("--fresh-seconds", type=float, default=5.0, help="cache freshness")
    args = parser.parse_args()
    args.duration = min(max(args.duration, 3.0), 600.0)
    args.idle = min(max(args.idle, 0.0), 600.0)
    with private_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        asyncio.run(drive(args, cluster, Path(tmp)))
        print(f"\nwhole run: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
