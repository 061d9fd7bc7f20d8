"""Warm-read throughput of one 50-entry Observation page, side by side with a bare endpoint.

A clinician of Region Nord (consent given by the patient, so the consent check runs in
full: consents, blocks, emergency access) reads ``GET /fhir/Observation?patient=<id>
&_count=50`` for the test person 191212121212 (620 Observations across the three FHIR
regions), with ``wrk`` as the load generator. Every read is authenticated (RS256),
consent-checked and written to the hash-chained access log, as in production. Three
servers run with the same number of uvicorn worker processes, on loopback:

* **gateway**: uvicorn ``--workers N --factory`` (``bench.harness``), PostgreSQL in a
  database created for the run, the three simulated regions as its sources. Warm: the
  person is known, consent given, connections pooled, and a few single reads plus a few
  seconds of load made before timing, so whatever the gateway keeps between requests
  (engagement index, cached source data where the build has a cache) is in place. Each
  answer is checked: a 200 counts only if its source status names every region as
  answered (``ok``) or served from a fresh cache (``cached``).
* **bare**: a FastAPI endpoint that returns the very bytes the gateway answered with.
* **sekmet**: sekmet-fhir, an independent FHIR server (FastAPI + SQLite), holding the same
  50 Observations for one patient and answering the same search (if installed).

Rounds are interleaved (the order rotates each round) so the shared machine's drift hits
every server alike. Prints requests/s and latency percentiles (medians over the rounds)
and the ratio gateway/bare; the goals are 1,000 requests/s and a third of the bare rate.
Also the CPU each server used per answer (from /proc), which the machine's other work
disturbs much less than the rates, and the ceiling that implies on this machine's cores.

    .venv/bin/python -m bench.bench_warm [--workers 2] [--connections 32] [--duration 8]
                                          [--rounds 3]

Needs ``wrk`` (Debian: ``apt-get install wrk``) and PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Response

from bench.harness import (
    CLINICIAN_CARE_PROVIDER,
    POSTGRES_ADMIN_URL,
    TEST_PERSON,
    Issuer,
    Process,
    RunningGateway,
    free_port,
    fresh_postgres,
    machine_cpu,
    median,
    open_gateway,
    postgres_cpu,
    process_tree_cpu,
    region_sources,
    start_gateway_workers,
    start_regions,
    start_uvicorn_workers,
)
from consent.fhir import consent_resource
from store.tables import ConsentRecord

#: Generous on purpose: the benchmark measures throughput, and counts any answer that is
#: not complete (every source ``ok``) rather than letting the deadline trim it.
BENCH_TIMEOUT = 60.0
PAGE_SIZE = 50
MEDIA_TYPE = "application/fhir+json; charset=utf-8"
BARE_BODY_VARIABLE = "BENCH_BARE_BODY"
SEKMET_TOKEN = "bench-sekmet-token"  # noqa: S105 - a throw-away token for a loopback server
#: A source whose data is in the answer, in the gateway's outcome entry as rendered
#: (compact JSON): asked and answered, or served from a fresh cache of its data.
SOURCE_HAS_DATA = ('"url":"status","valueCode":"ok"', '"url":"status","valueCode":"cached"')
#: The citizen reads and manages consents (as ``samlad token --role citizen``).
CITIZEN_SCOPE = "patient/*.rs patient/Consent.cu"
GOAL_RATE = 1000.0
GOAL_RATIO = 1 / 3

# wrk's Lua. Every target gets the same: requests prepared once and sent in turn (one
# bearer token each, so the load comes from many principals, as it would in production and
# as the per-principal rate limits expect), and ``done`` prints one JSON line. With
# markers, ``response`` also counts status codes and the 200s whose body does not hold
# ``expected`` markers (every source's data present); only the gateway gets markers:
# handing wrk every body costs it CPU that, at the bare endpoint's rate, would come out
# of the servers' share of the two cores.
WRK_SCRIPT = """
local markers = {%(markers)s}
local expected = %(expected)d
local authorizations = {%(authorizations)s}
local threads = {}
local prepared = {}
local turn = 0
counts = {}
incomplete = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for i, value in ipairs(authorizations) do
    prepared[i] = wrk.format(nil, nil, {["Authorization"] = value})
  end
end

function request()
  turn = turn %% #prepared + 1
  return prepared[turn]
end

if #markers > 0 then
  function response(status, headers, body)
    counts[status] = (counts[status] or 0) + 1
    if status == 200 then
      local found = 0
      for _, marker in ipairs(markers) do
        local at = 1
        while true do
          local s, e = string.find(body, marker, at, true)
          if not s then break end
          found, at = found + 1, e + 1
        end
      end
      if found ~= expected then incomplete = incomplete + 1 end
    end
  end
end

function done(summary, latency, requests)
  local statuses, bad = {}, 0
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    if c then
      for k, v in pairs(c) do statuses[k] = (statuses[k] or 0) + v end
    end
    bad = bad + (t:get("incomplete") or 0)
  end
  local parts = {}
  for k, v in pairs(statuses) do table.insert(parts, string.format('"%%d":%%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH-WRK {"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50":%%d,"p90":%%d,"p99":%%d,"max":%%d,' ..
    '"statuses":{%%s},"incomplete":%%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, table.concat(parts, ","), bad))
end
"""


@dataclass
class WrkRun:
    """One wrk run, as its ``done`` callback reported it (times in seconds)."""

    requests: int
    seconds: float
    bytes: int
    p50: float
    p90: float
    p99: float
    max: float
    #: Socket errors and HTTP statuses of 400 and above, as wrk counts them.
    errors: dict[str, int]
    #: Status code -> count (only where the responses were inspected).
    statuses: dict[int, int]
    #: 200s whose source status did not say every source answered (gateway only).
    incomplete: int
    #: CPU seconds used during the run (see :func:`cpu_counters`).
    cpu: dict[str, float] = field(default_factory=dict)

    def cpu_ms_per_answer(self, *parts: str) -> float:
        return sum(self.cpu[p] for p in parts) / self.requests * 1000 if self.requests else 0.0

    @property
    def others_cores(self) -> float:
        """Cores busy with anything but the target, its regions and database, and wrk, on
        average over the run."""
        ours = sum(self.cpu[p] for p in ("server", "regions", "postgres", "wrk"))
        return (self.cpu["busy"] - ours) / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        """Answers that were not a complete 200, and requests that got no answer."""
        return sum(self.errors.values()) + self.incomplete

    @property
    def rate(self) -> float:
        """Good answers per second: every failed one left out."""
        good = self.requests - self.errors["status"] - self.incomplete
        return good / self.seconds if self.seconds else 0.0

    @classmethod
    def parse(cls, output: str) -> WrkRun:
        line = next(x for x in output.splitlines() if x.startswith("BENCH-WRK "))
        data: dict[str, Any] = json.loads(line.removeprefix("BENCH-WRK "))
        return cls(
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            bytes=data["bytes"],
            p50=data["p50"] / 1e6,
            p90=data["p90"] / 1e6,
            p99=data["p99"] / 1e6,
            max=data["max"] / 1e6,
            errors={k: data[k] for k in ("connect", "read", "write", "status", "timeout")},
            statuses={int(k): v for k, v in data["statuses"].items()},
            incomplete=data["incomplete"],
        )


@dataclass
class Target:
    """One server under load: the URL wrk asks, the bearer tokens it sends in turn, and
    its Lua script."""

    name: str
    url: str
    tokens: list[str]
    script: Path
    #: The processes that serve it (each with its descendants), for the CPU they use.
    server: int
    #: The gateway's: the regions it asks, and its database.
    regions: list[int] = field(default_factory=list)
    database_url: str | None = None
    body_size: int = 0


def lua_string(value: str) -> str:
    """``value`` as a Lua string literal (plain ASCII only: tokens and JSON fragments)."""
    if not value.isascii() or not value.isprintable() or "\\" in value:
        raise ValueError("only plain ASCII goes into the wrk script")
    return json.dumps(value)


def write_script(
    folder: Path,
    name: str,
    tokens: Sequence[str],
    markers: Sequence[str] = (),
    expected: int = 0,
) -> Path:
    """The wrk script for one target: requests sent with each of the bearer ``tokens`` in
    turn; with ``markers``, each 200 must hold ``expected`` of them in all."""
    values = {
        "markers": ", ".join(lua_string(m) for m in markers),
        "expected": expected,
        "authorizations": ", ".join(lua_string(f"Bearer {t}") for t in tokens),
    }
    path = folder / f"wrk-{name}.lua"
    path.write_text(WRK_SCRIPT % values, encoding="utf-8")
    return path


def run_wrk(wrk: str, target: Target, threads: int, connections: int, duration: float) -> WrkRun:
    """Load ``target`` for ``duration`` seconds from a wrk process; the timing process
    only waits."""
    args = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "60s",
        "-s",
        str(target.script),
    ]
    before = cpu_counters(target)
    done = subprocess.run(  # noqa: S603 - wrk, found on PATH, with our arguments
        [*args, target.url], capture_output=True, text=True, timeout=duration + 120, check=False
    )
    after = cpu_counters(target)
    if done.returncode != 0 or "BENCH-WRK " not in done.stdout:
        raise RuntimeError(f"wrk failed for {target.name}: {done.stdout}{done.stderr}")
    result = WrkRun.parse(done.stdout)
    result.cpu = {name: after[name] - before[name] for name in after}
    return result


def cpu_counters(target: Target) -> dict[str, float]:
    """CPU seconds used so far by the target's server (all workers), its regions, the
    PostgreSQL processes of its open connections, finished children of this process (wrk),
    and the machine: busy, and in all (cores x time)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy, total = machine_cpu()
    return {
        "server": process_tree_cpu(target.server),
        "regions": sum(process_tree_cpu(pid) for pid in target.regions),
        "postgres": postgres_cpu(target.database_url) if target.database_url else 0.0,
        "wrk": children.ru_utime + children.ru_stime,
        "busy": busy,
        "total": total,
    }


# -- the bare endpoint ---------------------------------------------------------------


def bare_app_from_environment() -> FastAPI:
    """uvicorn ``--factory`` entry point: ``GET /fhir/Observation`` answers the bytes in
    the file ``BENCH_BARE_BODY`` names, and nothing else happens."""
    body = Path(os.environ[BARE_BODY_VARIABLE]).read_bytes()
    app = FastAPI()

    @app.get("/fhir/Observation")
    async def page() -> Response:
        return Response(body, media_type=MEDIA_TYPE)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


# -- the gateway, warm -----------------------------------------------------------------


def consent_for(patient_id: str, care_provider: str) -> dict[str, Any]:
    """The patient's consent that ``care_provider`` may read (docs/consent.md), written as
    the gateway itself writes a Consent resource."""
    now = datetime.now(UTC)
    record = ConsentRecord(
        id="new",
        patient_id=patient_id,
        grantee_type="care-provider",
        grantee_hsa_id=care_provider,
        period_start=now,
        recorded_at=now,
    )
    return consent_resource(record, now)


def has_data(body: bytes) -> int:
    """How many sources the answer says it holds data of."""
    return sum(body.count(marker.encode()) for marker in SOURCE_HAS_DATA)


async def prepare_gateway(
    gateway: RunningGateway, issuer: Issuer, sources: int, clinicians: int, warm_reads: int
) -> tuple[str, list[str], bytes]:
    """Resolve the person, record the consent, read a few times; returns the page URL,
    a token for each of ``clinicians`` clinicians of the consented care provider, and
    the last page's bytes."""
    await open_gateway(gateway)
    token = issuer.token({"personnummer": TEST_PERSON, "scope": CITIZEN_SCOPE})
    citizen = {"Authorization": f"Bearer {token}"}
    response = await gateway.client.post(
        "/Consent",
        content=orjson.dumps(consent_for(gateway.patient_id, CLINICIAN_CARE_PROVIDER)),
        headers={**citizen, "Content-Type": "application/fhir+json"},
    )
    if response.status_code != 201:
        raise RuntimeError(f"consent not recorded: {response.status_code} {response.text[:300]}")
    prefix = CLINICIAN_CARE_PROVIDER.split("-")[0]  # the provider's organisation number
    tokens = [issuer.clinician_token(hsa_id=f"{prefix}-DOC{n}") for n in range(1, clinicians + 1)]
    url = f"{gateway.base_url}/Observation?patient={gateway.patient_id}&_count={PAGE_SIZE}"
    body = b""
    for read in range(warm_reads):
        headers = {"Authorization": f"Bearer {tokens[read % len(tokens)]}"}
        response = await gateway.client.get(url, headers=headers)
        response.raise_for_status()
        body = response.content
    bundle = orjson.loads(body)
    matches = sum(1 for e in bundle["entry"] if e["search"]["mode"] == "match")
    if matches != PAGE_SIZE or has_data(body) != sources:
        outcome = next(e for e in bundle["entry"] if e["search"]["mode"] == "outcome")
        said = [issue.get("diagnostics") for issue in outcome["resource"]["issue"]]
        raise RuntimeError(f"unexpected page: {matches} matches; sources said {said}")
    return url, tokens, body


# -- sekmet-fhir: an independent FHIR server ---------------------------------------------


def start_sekmet(folder: Path, workers: int, log_dir: Path) -> tuple[Process, str]:
    """sekmet-fhir with ``workers`` uvicorn workers and its data in ``folder``; returns
    the process and the FHIR base URL."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    settings = folder / "settings.yaml"
    settings.write_text(
        "\n".join(
            [
                "host: 127.0.0.1",
                f"port: {port}",
                f"base_url: {base}",
                f"data_dir: {json.dumps(str(folder / 'data'))}",
                "server_auth: {types: [bearer], tokens: [" + SEKMET_TOKEN + "]}",
                "simulator: {enabled: false}",
                "log_inbound: false",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    process = start_uvicorn_workers(
        "sekmet",
        "sekmet.main:app_factory",
        port,
        workers,
        log_dir,
        {"SEKMET_CONFIG": str(settings)},
        cwd=folder,
        health_path="/fhir/metadata",
    )
    return process, base


def seed_sekmet(base: str, page: bytes) -> str:
    """Store the page's Observations in sekmet for one new Patient; returns the URL of the
    same search there."""
    headers = {"Authorization": f"Bearer {SEKMET_TOKEN}", "Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=base, headers=headers, timeout=30.0) as client:
        patient = {"resourceType": "Patient", "name": [{"family": "Tolvansson"}]}
        response = client.post("/Patient", content=orjson.dumps(patient))
        response.raise_for_status()
        patient_id = response.json()["id"]
        for entry in orjson.loads(page)["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] != "Observation":
                continue
            copy = {k: v for k, v in resource.items() if k != "id"}
            copy["subject"] = {"reference": f"Patient/{patient_id}"}
            client.post("/Observation", content=orjson.dumps(copy)).raise_for_status()
    return f"{base}/Observation?patient={patient_id}&_count={PAGE_SIZE}"


# -- measuring -------------------------------------------------------------------------------


def fetch_page(target: Target) -> bytes:
    """One request: the target must answer 200 with a page of 50; returns the body."""
    headers = {"Authorization": f"Bearer {target.tokens[0]}"}
    response = httpx.get(target.url, headers=headers, timeout=60.0)
    response.raise_for_status()
    entries = orjson.loads(response.content)["entry"]
    matches = sum(1 for e in entries if e.get("search", {}).get("mode", "match") == "match")
    if matches != PAGE_SIZE:
        raise RuntimeError(f"{target.name}: {matches} matches, expected {PAGE_SIZE}")
    return response.content


def report(targets: Sequence[Target], runs: dict[str, list[WrkRun]]) -> None:
    """Medians over the rounds per target, then the ratios and the goals."""

    def ms(values: Sequence[float]) -> str:
        return f"{median(values) * 1000:7.1f}"

    print(
        f"{'':8} {'req/s':>7}  {'(each round)':<22} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7}"
        f" {'max ms':>7} {'bytes':>7}  failed"
    )
    for target in targets:
        done = runs[target.name]
        rates = "(" + ", ".join(f"{r.rate:.0f}" for r in done) + ")"
        errors = {k: sum(r.errors[k] for r in done) for k in done[0].errors}
        errors["incomplete"] = sum(r.incomplete for r in done)
        failed = ", ".join(f"{k} {v}" for k, v in errors.items() if v) or "0"
        print(
            f"{target.name:8} {median([r.rate for r in done]):7.1f}  {rates:<22}"
            f" {ms([r.p50 for r in done])} {ms([r.p90 for r in done])}"
            f" {ms([r.p99 for r in done])} {max(r.max for r in done) * 1000:7.1f}"
            f" {target.body_size:7d}  {failed} of {sum(r.requests for r in done)}"
        )
    print("CPU per answer (medians over the rounds), and other work on the machine meanwhile:")
    for target in targets:
        done = runs[target.name]
        server = [r.cpu_ms_per_answer("server") for r in done]
        rounds = ", ".join(f"{x:.1f}" for x in server)
        parts = f"{median(server):6.2f} ms server ({rounds})"
        if target.regions:
            parts += (
                f" + {median([r.cpu_ms_per_answer('regions') for r in done]):.2f} ms regions"
                f" + {median([r.cpu_ms_per_answer('postgres') for r in done]):.2f} ms PostgreSQL"
            )
        wrk = median([r.cpu_ms_per_answer("wrk") for r in done])
        others = median([r.others_cores for r in done])
        print(f"  {target.name:8} {parts}; wrk {wrk:.2f} ms; other work {others:.2f} cores busy")
    # Less sensitive to the machine's other work than the rates: what the cores could serve
    # if the server (with its regions and database) had them all, wrk aside.
    cores = os.cpu_count() or 1
    ceilings = {
        target.name: cores
        * 1000
        / median([r.cpu_ms_per_answer("server", "regions", "postgres") for r in runs[target.name]])
        for target in targets
    }
    print(
        f"CPU-bound ceiling on {cores} cores: "
        + ", ".join(f"{name} {ceiling:.0f} req/s" for name, ceiling in ceilings.items())
        + f"; gateway/bare {ceilings['gateway'] / ceilings['bare']:.3f}"
    )
    gateway, bare = runs["gateway"], runs["bare"]
    statuses: dict[int, int] = {}
    for run in gateway:
        for code, count in run.statuses.items():
            statuses[code] = statuses.get(code, 0) + count
    print(
        f"gateway answers by status: {dict(sorted(statuses.items()))}; of the 200s, "
        f"{sum(r.incomplete for r in gateway)} without every source's data"
    )
    gateway_rate, bare_rate = median([r.rate for r in gateway]), median([r.rate for r in bare])
    ratio = gateway_rate / bare_rate
    pairs = [g.rate / b.rate for g, b in zip(gateway, bare, strict=True) if b.rate]
    print(
        f"gateway/bare: {ratio:.3f} (ratio of the medians; per round "
        + ", ".join(f"{r:.3f}" for r in pairs)
        + f"); goal >= {GOAL_RATIO:.3f}: {'met' if ratio >= GOAL_RATIO else 'NOT met'}"
    )
    if "sekmet" in runs:
        sekmet_rate = median([r.rate for r in runs["sekmet"]])
        print(
            f"gateway/sekmet: {gateway_rate / sekmet_rate:.3f}; "
            f"sekmet/bare: {sekmet_rate / bare_rate:.3f}"
        )
    print(
        f"gateway: {gateway_rate:.1f} good answers/s; goal >= {GOAL_RATE:.0f}: "
        f"{'met' if gateway_rate >= GOAL_RATE else 'NOT met'}"
    )
    if any(r.failed for done in runs.values() for r in done):
        print("NOTE: some requests failed (see 'failed'); req/s counts good answers only")


async def start_targets(
    args: argparse.Namespace, folder: Path, database_url: str, processes: list[Process]
) -> list[Target]:
    """Start the regions and the three servers (appending each to ``processes`` at once,
    so the caller stops them whatever happens); the gateway warm, the others seeded."""
    regions = start_regions(folder)
    processes += [r.process for r in regions]
    issuer = Issuer.create(folder)
    gateway = start_gateway_workers(
        "gateway",
        folder / "gateway",
        issuer,
        region_sources(regions, BENCH_TIMEOUT),
        folder,
        workers=args.workers,
        database_url=database_url,
        request_deadline=BENCH_TIMEOUT,
    )
    processes.append(gateway.process)
    try:
        url, tokens, page = await prepare_gateway(
            gateway, issuer, len(regions), args.clinicians, warm_reads=5
        )
    finally:
        await gateway.client.aclose()
    script = write_script(folder, "gateway", tokens, SOURCE_HAS_DATA, len(regions))
    targets = [
        Target(
            "gateway",
            url,
            tokens,
            script,
            gateway.process.popen.pid,
            [r.process.popen.pid for r in regions],
            database_url,
        )
    ]

    body_file = folder / "page.json"
    body_file.write_bytes(page)
    port = free_port()
    bare = start_uvicorn_workers(
        "bare",
        "bench.bench_warm:bare_app_from_environment",
        port,
        args.workers,
        folder,
        {BARE_BODY_VARIABLE: str(body_file)},
    )
    processes.append(bare)
    bare_url = url.replace(f":{gateway.port}/", f":{port}/", 1)
    script = write_script(folder, "bare", tokens)
    targets.append(Target("bare", bare_url, tokens, script, bare.popen.pid))
    if fetch_page(targets[-1]) != page:
        raise RuntimeError("the bare endpoint does not answer the gateway's bytes")

    if args.no_sekmet:
        print("sekmet: left out (--no-sekmet)")
    elif find_spec("sekmet") is None:
        print("sekmet: not installed (pip install sekmet-fhir); left out")
    else:
        process, base = start_sekmet(folder / "sekmet", args.workers, folder)
        processes.append(process)
        sekmet_url = seed_sekmet(base, page)
        script = write_script(folder, "sekmet", [SEKMET_TOKEN])
        targets.append(Target("sekmet", sekmet_url, [SEKMET_TOKEN], script, process.popen.pid))
    for target in targets:
        target.body_size = len(fetch_page(target))
    return targets


async def run(args: argparse.Namespace, wrk: str) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="samlad-bench-") as tmp,
        fresh_postgres(args.postgres) as database_url,
    ):
        folder = Path(tmp)
        processes: list[Process] = []
        try:
            targets = await start_targets(args, folder, database_url, processes)
            print(
                f"{args.workers} uvicorn workers per server; wrk {args.threads} thread(s), "
                f"{args.connections} connections, {args.duration:g} s per run, {args.rounds} "
                f"interleaved rounds after {args.warmup:g} s of warm-up load each; "
                f"{args.clinicians} clinicians' tokens in turn"
            )
            for target in targets:
                run_wrk(wrk, target, args.threads, args.connections, args.warmup)
            runs: dict[str, list[WrkRun]] = {t.name: [] for t in targets}
            for round_number in range(args.rounds):
                shift = round_number % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    runs[target.name].append(
                        run_wrk(wrk, target, args.threads, args.connections, args.duration)
                    )
            report(targets, runs)
        finally:
            for process in reversed(processes):
                process.stop()  # before the database is dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per server")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up load")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--clinicians", type=int, default=200, help="distinct clinicians' tokens, sent in turn"
    )
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL, help="admin database URL")
    parser.add_argument("--no-sekmet", action="store_true", help="leave sekmet-fhir out")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            "wrk is not installed: it is the load generator of this benchmark.\n"
            "Install it from Debian's packages (apt-get install wrk) and run again.",
            file=sys.stderr,
        )
        sys.exit(2)
    asyncio.run(run(args, wrk))


if __name__ == "__main__":
    main()
