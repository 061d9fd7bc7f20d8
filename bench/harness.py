"""What the gateway benchmarks share: real servers in subprocesses, a test issuer, timing.

Everything runs on loopback as separate processes, so the process that times a request
does no serving and competes with no server for the interpreter lock:

* simulated regions: ``python -m simregions --region ID --port P`` each;
* the gateway: ``python -m gateway.run.cli serve --config FILE`` with SQLite in a temporary
  folder and a throw-away token issuer whose private key only this process holds; either
  migrating at start-up, or (``start_gateway(..., migrated=True)``) as production starts
  it: ``python -m gateway.run.cli migrate`` first, then the server with auto-migrate off;
* or the gateway with several worker processes on PostgreSQL
  (:func:`start_gateway_workers`): uvicorn ``--workers N --factory`` pointed at
  ``gateway.run.cli:app_from_environment`` (as ``samlad serve --workers N`` does), in a
  database created for the run (:func:`fresh_postgres`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import psycopg
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy.engine import make_url

from adapters.fhir_r4 import format_identifier
from fhir_profiles.codes import CONSENT_SCOPE_SYSTEM, LOINC_SYSTEM, PARTICIPATION_TYPE_SYSTEM
from fhir_profiles.extensions import HSA_ORGANISATION_LEVEL_URL, SOURCE_STATUS_URL
from fhir_profiles.identifiers import HSA_ID_SYSTEM, parse_person_identifier
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from gateway.run.cli import LOG_LEVEL_VARIABLE
from gateway.run.configfile import CONFIG_FILE_VARIABLE
from gateway.run.demo import region_source
from simregions.regions import DEFAULT_REGIONS, RegionSpec

if TYPE_CHECKING:
    pass

#: The access log's checkpoint signing key of every benchmark gateway (Ed25519 seed, hex).
CHECKPOINT_KEY = "a1" * 32

TEST_PERSON = "191212121212"
ISSUER = "https://bench-issuer.invalid"
AUDIENCE = "https://bench-gateway.invalid/fhir"
PERSONNUMMER_SYSTEM = "http://electronichealth.se/identifier/personnummer"
ROOT = Path(__file__).resolve().parent.parent
#: The clinician of ``samlad token --role clinician``: Region Nord, Medicinmottagningen.
CLINICIAN_HSA_ID = "SE2321009001-DOC1"
CLINICIAN_CARE_UNIT = "SE2321009001-MEDM"
CLINICIAN_CARE_PROVIDER = "SE2321009001-NORD"
#: Where the benches create their PostgreSQL databases (trust auth on loopback).
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def consent_body(patient_id: str, grantee: str) -> dict[str, object]:
    """A person's consent for the care provider ``grantee`` (an HSA-id) to read their
    record, as ``POST /fhir/Consent`` takes it."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC_SYSTEM, "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "provision": {
            "type": "permit",
            "actor": [
                {
                    "role": {"coding": [{"system": PARTICIPATION_TYPE_SYSTEM, "code": "IRCP"}]},
                    "reference": {
                        "extension": [
                            {"url": HSA_ORGANISATION_LEVEL_URL, "valueCode": "care-provider"}
                        ],
                        "identifier": {"system": HSA_ID_SYSTEM, "value": grantee},
                    },
                }
            ],
        },
    }


def free_port() -> int:
    """A port nobody listens on right now (the tiny race is fine for a benchmark)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    """A server subprocess, stopped by its own pid."""

    name: str
    popen: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def spawn(
    name: str,
    args: Sequence[str],
    log_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
) -> Process:
    """Start ``python args...`` from the repository root, output to ``log_dir/name.log``."""
    log = (log_dir / f"{name}.log").open("wb")
    popen = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
        [sys.executable, *args],
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**quiet_environment(), **(extra_env or {})},
    )
    return Process(name, popen)


def wait_until_up(url: str, process: Process, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers (any status), or fail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited early; see its log")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not start within {timeout:.0f} s")


@dataclass
class RunningRegion:
    spec: RegionSpec
    port: int
    process: Process

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def set_latency(self, latency_ms: float) -> None:
        response = httpx.put(
            f"http://127.0.0.1:{self.port}/_sim/behaviour",
            json={"latency_ms": latency_ms, "fault": "none"},
            headers={"Authorization": f"Bearer {self.spec.token}"},
        )
        response.raise_for_status()

    def set_behaviour(self, settings: Mapping[str, Any]) -> None:
        """Change any of the region's behaviour settings (``simregions/behaviour.py``):
        ``latency_ms``, ``fault``, ``fault_rate``, ``fault_paths``, ``seed``."""
        response = httpx.put(
            f"http://127.0.0.1:{self.port}/_sim/behaviour",
            json=dict(settings),
            headers={"Authorization": f"Bearer {self.spec.token}"},
        )
        response.raise_for_status()


def start_regions(log_dir: Path) -> list[RunningRegion]:
    """The three FHIR regions, one subprocess each."""
    running = []
    for spec in DEFAULT_REGIONS:
        port = free_port()
        process = spawn(
            f"region-{spec.id}",
            ["-m", "simregions", "--region", spec.id, "--port", str(port)],
            log_dir,
        )
        running.append(RunningRegion(spec, port, process))
    for region in running:
        wait_until_up(f"http://127.0.0.1:{region.port}/fhir/metadata", region.process)
    return running


@dataclass
class Issuer:
    """A throw-away RS256 issuer: the gateway trusts its JWKS file, we hold the key."""

    key: RSAKey
    jwks_file: Path

    @classmethod
    def create(cls, folder: Path) -> Issuer:
        key = RSAKey.generate_key(2048, parameters={"kid": "bench-1"})
        jwks = folder / "jwks.json"
        jwks.write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
        return cls(key, jwks)

    def citizen_token(self, personnummer: str = TEST_PERSON) -> str:
        return self.token({"personnummer": personnummer, "scope": "patient/*.rs"})

    def token(self, claims: Mapping[str, str], lifetime: int = 3600) -> str:
        """A signed token for this issuer and the gateway's audience, with ``claims``."""
        now = int(time.time())
        registered = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode({"alg": "RS256", "kid": "bench-1"}, {**registered, **claims}, self.key)

    def clinician_token(
        self,
        hsa_id: str = CLINICIAN_HSA_ID,
        care_unit: str = CLINICIAN_CARE_UNIT,
        care_provider: str = CLINICIAN_CARE_PROVIDER,
    ) -> str:
        """A clinician of Region Nord's medicine clinic, as ``samlad token --role clinician``."""
        return self.token(
            {
                "hsa_id": hsa_id,
                "care_unit_hsa_id": care_unit,
                "care_provider_hsa_id": care_provider,
                "scope": "user/*.rs",
            }
        )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(str(value)).decode()  # a JSON string is a valid TOML basic string


def _toml_table(header: str, values: dict[str, Any]) -> list[str]:
    """``values`` as the TOML table ``header`` (``[gateway]``, ``[[sources]]``), a dict
    among them as a table inside it."""
    lines = [header]
    nested = []
    for key, value in values.items():
        if isinstance(value, dict):
            nested.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in nested:
        lines.append(f"[{header.strip('[]')}.{key}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in value.items())
    return lines


@dataclass
class RunningGateway:
    port: int
    process: Process
    token: str
    patient_id: str = ""
    client: httpx.AsyncClient = field(init=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"


def start_gateway(
    name: str,
    folder: Path,
    issuer: Issuer,
    sources: Sequence[dict[str, Any]],
    log_dir: Path,
    *,
    migrated: bool = False,
    **gateway: Any,
) -> RunningGateway:
    """A gateway subprocess for ``sources``, with SQLite in ``folder``.

    By default the server brings the schema up to date itself at start-up
    (``auto_migrate = true``). With ``migrated``, it starts as production does: ``samlad
    migrate`` runs first, to completion, in a process of its own (:func:`migrate_database`),
    and the server starts with ``auto_migrate = false``, so it only checks that the schema
    is current (and does not import Alembic)."""
    port = free_port()
    if migrated:
        gateway = {**gateway, "auto_migrate": False}
    config = write_gateway_config(folder, port, issuer, sources, **gateway)
    if migrated:
        migrate_database(config, log_dir / f"{name}-migrate.log")
    process = spawn(
        name,
        ["-m", "gateway.run.cli", "--log-level", "WARNING", "serve", "--config", str(config)],
        log_dir,
    )
    wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
    return RunningGateway(port, process, issuer.citizen_token())


def migrate_database(config: Path, log: Path, timeout: float = 120.0) -> None:
    """``python -m gateway.run.cli migrate --config config`` (``samlad migrate``) with the
    interpreter, folder and environment :func:`spawn` uses, run to completion; its output
    goes to ``log``. Raises with that output if it fails."""
    completed = subprocess.run(  # noqa: S603 - our own interpreter and modules
        [sys.executable, "-m", "gateway.run.cli", "migrate", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=quiet_environment(),
        timeout=timeout,
        check=False,
    )
    output = completed.stdout.decode(errors="replace")
    log.write_text(output, encoding="utf-8")
    if completed.returncode != 0:
        raise RuntimeError(
            f"samlad migrate --config {config} failed with exit code {completed.returncode}:\n"
            f"{output}"
        )


def write_gateway_config(
    folder: Path,
    port: int,
    issuer: Issuer,
    sources: Sequence[dict[str, Any]],
    **gateway: Any,
) -> Path:
    """Write ``folder/gateway.toml`` for a gateway on ``port`` (SQLite in ``folder`` unless
    ``database_url`` is given) trusting ``issuer``, with ``sources``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "dev_mode": False,
        "auto_migrate": True,
        "data_dir": str(folder),
        "database_url": f"sqlite:///{folder / 'samlad.db'}",
        "host": "127.0.0.1",
        "port": port,
        "public_base_url": f"http://127.0.0.1:{port}",
        "id_key": "bench-id-key-0123456789",
        "data_key": "bench-data-key-0123456789",
        "audit_checkpoint_key": CHECKPOINT_KEY,
        **gateway,
    }
    lines = _toml_table("[gateway]", settings)
    lines += [
        "",
        "[[issuers]]",
        f"issuer = {_toml_value(ISSUER)}",
        f"audience = {_toml_value(AUDIENCE)}",
        f"jwks_file = {_toml_value(issuer.jwks_file)}",
        'algorithms = ["RS256"]',
    ]
    for source in sources:
        lines += ["", *_toml_table("[[sources]]", source)]
    config = folder / "gateway.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


# -- several worker processes on PostgreSQL ---------------------------------------------


@contextmanager
def fresh_postgres(admin_url: str = POSTGRES_ADMIN_URL) -> Iterator[str]:
    """A new PostgreSQL database, migrated to head, dropped afterwards: nothing else's
    data is touched and every run starts cold. Yields its URL."""
    name = f"samlad_bench_{uuid.uuid4().hex[:12]}"
    admin = make_url(admin_url)
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        # Migrated here, once: N workers each migrating at start-up would race.
        from store.migrate import upgrade

        upgrade(url)
        yield url
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_uvicorn_workers(
    name: str,
    factory: str,
    port: int,
    workers: int,
    log_dir: Path,
    extra_env: Mapping[str, str],
    cwd: Path = ROOT,
    health_path: str = "/healthz",
    timeout: float = 90.0,
) -> Process:
    """``factory`` served by N uvicorn workers on loopback, each with its own socket on the
    port (:mod:`gateway.run.workers`, as ``samlad serve`` runs them); returns once every worker has
    finished its start-up (counted in uvicorn's log) and ``health_path`` answers."""
    process = spawn(
        name,
        [
            "-m",
            "gateway.run.workers",  # as ``samlad serve --workers N`` runs them
            factory,
            "--workers",
            str(workers),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "info",  # for the start-up lines counted below; nothing per request
        ],
        log_dir,
        extra_env,
        cwd,
    )
    log = log_dir / f"{name}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{name} exited early; see {log}")
        started = log.read_text(errors="replace").count("Application startup complete.")
        if started >= workers:
            break
        time.sleep(0.1)
    else:
        process.stop()
        raise RuntimeError(f"{name}: not every worker started within {timeout:.0f} s; see {log}")
    wait_until_up(f"http://127.0.0.1:{port}{health_path}", process)
    return process


def start_gateway_workers(
    name: str,
    folder: Path,
    issuer: Issuer,
    sources: Sequence[dict[str, Any]],
    log_dir: Path,
    *,
    workers: int,
    database_url: str,
    **gateway: Any,
) -> RunningGateway:
    """A gateway of ``workers`` processes on ``database_url`` (already migrated), as
    production runs it: one uvicorn per machine with several workers, one database."""
    port = free_port()
    config = write_gateway_config(
        folder, port, issuer, sources, database_url=database_url, auto_migrate=False, **gateway
    )
    process = start_uvicorn_workers(
        name,
        "gateway.run.cli:app_from_environment",
        port,
        workers,
        log_dir,
        {CONFIG_FILE_VARIABLE: str(config), LOG_LEVEL_VARIABLE: "WARNING"},
    )
    return RunningGateway(port, process, issuer.citizen_token())


def region_sources(regions: Sequence[RunningRegion], timeout: float) -> list[dict[str, Any]]:
    """``[[sources]]`` entries for the running regions, as the demo writes them."""
    sources = []
    for region in regions:
        source = region_source(region.spec, region.base_url)
        source["timeout"] = timeout
        source["auth"] = {"type": "bearer", "token": region.spec.token}
        sources.append(source)
    return sources


async def open_gateway(gateway: RunningGateway) -> None:
    """Connect to the gateway and resolve the test person's unified id."""
    gateway.client = httpx.AsyncClient(
        base_url=gateway.base_url,
        headers={"Authorization": f"Bearer {gateway.token}"},
        timeout=120.0,
    )
    response = await gateway.client.post(
        "/Patient/_search", data={"identifier": f"{PERSONNUMMER_SYSTEM}|{TEST_PERSON}"}
    )
    response.raise_for_status()
    entries = response.json()["entry"]
    gateway.patient_id = next(
        e["resource"]["id"] for e in entries if e["resource"]["resourceType"] == "Patient"
    )


@dataclass
class Overview:
    """One timed ``$everything``."""

    elapsed: float
    total: int
    #: source id -> status code
    statuses: dict[str, str]
    #: The slowest source's ``elapsedMs`` as the gateway reported it (seconds): the fan-out.
    fan_out: float
    #: The answer's size in bytes.
    size: int = 0


def source_status(issue: dict[str, Any]) -> dict[str, Any] | None:
    """The parts of an outcome issue's ``source-status`` extension by name (``source``,
    ``status``, ``elapsedMs``, ...); None for an issue that names no source."""
    for ext in issue.get("extension", []):
        if ext["url"] == SOURCE_STATUS_URL:
            return {e["url"]: e[k] for e in ext["extension"] for k in e if k != "url"}
    return None


async def everything(gateway: RunningGateway) -> Overview:
    """Time one ``$everything``, reading the per-source status from its outcome entry."""
    started = time.perf_counter()
    response = await gateway.client.get(f"/Patient/{gateway.patient_id}/$everything")
    body = response.content
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    bundle = orjson.loads(body)
    statuses: dict[str, str] = {}
    fan_out = 0.0
    for entry in bundle["entry"]:
        if entry["search"]["mode"] == "outcome":
            for issue in entry["resource"]["issue"]:
                values = source_status(issue)
                if values is None:
                    continue
                statuses[values["source"]] = values["status"]
                fan_out = max(fan_out, float(values["elapsedMs"]) / 1000)
    return Overview(elapsed, int(bundle["total"]), statuses, fan_out, len(body))


# -- the physical limit: the regions' data fetched directly ----------------------------


async def _search_type(
    client: httpx.AsyncClient, base: str, resource_type: str, patient_id: str, page_size: int
) -> int:
    count = 0
    url: str | None = f"{base}/{resource_type}"
    params: dict[str, str] | None = {"patient": patient_id, "_count": str(page_size)}
    while url is not None:
        response = await client.get(url, params=params)
        response.raise_for_status()
        bundle = orjson.loads(response.content)
        count += sum(1 for e in bundle.get("entry", []) if e["search"]["mode"] == "match")
        url = next(
            (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
        )
        params = None
    return count


async def fetch_region_directly(client: httpx.AsyncClient, region: RunningRegion) -> int:
    """The gateway's work for one region with a plain client: Patient search, then every
    type concurrently, each paged to the end. Returns the resources found."""
    source = region_source(region.spec, region.base_url)
    dialect = source["dialect"]
    person = parse_person_identifier(TEST_PERSON)
    value = format_identifier(person, dialect.get("identifier_format", "canonical"), date.today())
    system = dialect.get("identifier_system", PERSONNUMMER_SYSTEM)
    response = await client.post(
        f"{region.base_url}/Patient/_search",
        data={"identifier": f"{system}|{value}", "_count": "2"},
    )
    response.raise_for_status()
    patient_id = orjson.loads(response.content)["entry"][0]["resource"]["id"]
    counts = await asyncio.gather(
        *(
            _search_type(client, region.base_url, t, patient_id, region.spec.page_size)
            for t in PATIENT_COMPARTMENT_TYPES
        )
    )
    return sum(counts)


class DirectClients:
    """One pooled client per region, as the gateway keeps one per source."""

    def __init__(self, regions: Sequence[RunningRegion]) -> None:
        self.regions = list(regions)
        self.clients = [
            httpx.AsyncClient(
                headers={
                    "Authorization": f"Bearer {r.spec.token}",
                    "Accept": "application/fhir+json",
                },
                timeout=120.0,
            )
            for r in self.regions
        ]

    async def fetch_all(self) -> tuple[float, int]:
        """Every region concurrently: the wall time is the slowest region's."""
        started = time.perf_counter()
        counts = await asyncio.gather(
            *(fetch_region_directly(c, r) for c, r in zip(self.clients, self.regions, strict=True))
        )
        return time.perf_counter() - started, sum(counts)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


# -- CPU accounting (Linux /proc): who used the shared cores during a measurement --------


def memory_of(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) * 1024
    return found


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants, such
    as a uvicorn supervisor and its workers; 0 where /proc cannot tell."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, from field 3 on
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        pending += [int(child) for child in children.split()]
    return total


def postgres_cpu(database_url: str) -> float:
    """CPU seconds used so far by the server processes of the local PostgreSQL that are
    connected to ``database_url``'s database right now (a pool's connections)."""
    url = make_url(database_url)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (url.database,),
        ).fetchall()
    return sum(process_tree_cpu(int(pid)) for (pid,) in rows)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores together."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    values = [int(v) for v in first[:8]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return (sum(values) - idle) / ticks, sum(values) / ticks


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def quiet_environment() -> dict[str, str]:
    """No SAMLAD_* variables leak into the gateway subprocesses from the caller's shell."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SAMLAD_")}
