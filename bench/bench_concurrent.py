"""Concurrent cold overviews of many different people, with faults in one region.

Every simulated person opens the app at the same moment, as a citizen with a token of
their own: ``POST /fhir/Patient/_search`` by their identity number (the first look, which
asks every region), then ``GET /fhir/Patient/{id}/$everything`` (the overview). All of
them at once: 200 by default, over the 167 different people the three simulated FHIR
regions hold between them (people.py builds a fixed population), so 33 people open it
twice at the same moment. Cold: each scenario has a database of its own, created for it,
and a gateway started on it, so the gateway has seen nobody before (no person index, no
engagement index, no cached data); its connections to the regions open under the load.

The gateway runs as in production: several uvicorn workers on PostgreSQL, its default
resilience settings (retries, circuit breaker, 16 calls in flight per source and worker,
rate limits), a request deadline of 5 s and each region's timeout 5 s (the demo's). Every
region adds the same latency to each request. Side by side, one burst each:

* **healthy**: no faults;
* one scenario per fault named (``--faults``): the fault region answers that share
  (``--fault-rate``) of its requests with the fault, drawn with a fixed seed.

The goal: every answer 200 within the deadline, the faulty region reported in the
per-source status (``failed`` or ``timeout``), every other region served. Prints, per
scenario and request kind, the answers by status code, median, p95 and max latency, how
many answers came within the deadline, and what the status said about each region.

    .venv/bin/python -m bench.bench_concurrent [--overviews 200] [--workers 2]
        [--latency-ms 50] [--fault-region vast] [--faults timeout error-500]
        [--fault-rate 0.3]

Needs PostgreSQL on 127.0.0.1:5432 (``--postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.harness import (
    PERSONNUMMER_SYSTEM,
    POSTGRES_ADMIN_URL,
    Issuer,
    RunningGateway,
    RunningRegion,
    fresh_postgres,
    machine_cpu,
    median,
    postgres_cpu,
    process_tree_cpu,
    region_sources,
    start_gateway_workers,
    start_regions,
)
from fhir_profiles.identifiers import SAMORDNINGSNUMMER_SYSTEM
from simregions.behaviour import FAULTS
from simregions.people import Person, all_people

#: As in production (the settings' and the demo's defaults).
REQUEST_DEADLINE = 5.0
SOURCE_TIMEOUT = 5.0
CITIZEN_SCOPE = "patient/*.rs patient/Consent.cu"
#: What the per-source status may say of a region that failed us, and of one that did not.
FAILURE_STATUSES = frozenset({"failed", "timeout", "stale"})
SERVED_STATUSES = frozenset({"ok", "no-data", "not-asked", "cached"})
FAULT_SEED = 20261122


@dataclass
class Answer:
    """One HTTP answer as the client saw it."""

    status: int
    elapsed: float
    #: source id -> status code, from the answer's outcome entry (200s only).
    sources: dict[str, str] = field(default_factory=dict)
    #: The slowest source's ``elapsedMs`` (seconds): the fan-out, bounded by the deadline.
    fan_out: float = 0.0
    #: What an error answer's OperationOutcome said.
    diagnostics: str = ""


@dataclass
class Visit:
    """One person's first look and overview."""

    search: Answer | None = None
    overview: Answer | None = None
    #: The search answered, but no region that holds the person did.
    nobody_found: bool = False
    #: A request that got no HTTP answer: which, and the client's exception.
    error: str | None = None


@dataclass
class Scenario:
    name: str
    fault: str
    burst: Burst
    #: The gateway's log lines of level WARNING and above, without their time: count.
    log: Counter[str]


def log_summary(path: Path) -> Counter[str]:
    """The gateway's warnings and errors, counted by message (they carry no personal
    data: sources are named by id and failures by kind)."""
    counted: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        for level in (" WARNING ", " ERROR ", " CRITICAL "):
            if level in line:
                counted[level.strip() + " " + line.split(level, 1)[1][:120]] += 1
    return counted


def read_outcome(answer: Answer, body: bytes) -> dict[str, Any]:
    """Parse ``body``; fill in the source status (a 200) or the diagnostics (an error)."""
    try:
        document: dict[str, Any] = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer.diagnostics = "not JSON"
        return {}
    if answer.status != 200:
        issues = document.get("issue", [])
        answer.diagnostics = "; ".join(str(i.get("diagnostics", i.get("code"))) for i in issues)
        return document
    answer.sources, answer.fan_out = source_statuses(document)
    return document


def source_statuses(bundle: dict[str, Any]) -> tuple[dict[str, str], float]:
    """Source id -> status code, from a searchset's outcome entry, and the slowest
    source's ``elapsedMs`` in seconds."""
    found: dict[str, str] = {}
    slowest = 0.0
    for entry in bundle.get("entry", []):
        if entry.get("search", {}).get("mode") != "outcome":
            continue
        for issue in entry["resource"].get("issue", []):
            for extension in issue.get("extension", []):
                values = {
                    part["url"]: value
                    for part in extension.get("extension", [])
                    for key, value in part.items()
                    if key != "url"
                }
                if "source" in values and "status" in values:
                    found[str(values["source"])] = str(values["status"])
                    slowest = max(slowest, float(values.get("elapsedMs", 0)) / 1000)
    return found, slowest


def identifier(person: Person) -> str:
    system = SAMORDNINGSNUMMER_SYSTEM if person.is_samordningsnummer else PERSONNUMMER_SYSTEM
    return f"{system}|{person.pnr}"


async def timed(request: httpx.Request, client: httpx.AsyncClient) -> tuple[Answer, bytes]:
    """Send ``request``; the clock stops when the whole body is in (parsed afterwards)."""
    started = time.perf_counter()
    response = await client.send(request)
    body = response.content
    return Answer(response.status_code, time.perf_counter() - started), body


async def visit(client: httpx.AsyncClient, person: Person, token: str, go: asyncio.Event) -> Visit:
    """The person's first look and overview, once ``go`` is set."""
    headers = {"Authorization": f"Bearer {token}"}
    done = Visit()
    await go.wait()
    kind = "search"
    try:
        search = client.build_request(
            "POST", "/Patient/_search", data={"identifier": identifier(person)}, headers=headers
        )
        done.search, body = await timed(search, client)
        bundle = read_outcome(done.search, body)
        if done.search.status != 200:
            return done
        patient_id = next(
            (
                e["resource"]["id"]
                for e in bundle.get("entry", [])
                if e["resource"]["resourceType"] == "Patient"
            ),
            None,
        )
        if patient_id is None:
            done.nobody_found = True
            return done
        kind = "overview"
        overview = client.build_request(
            "GET", f"/Patient/{patient_id}/$everything", headers=headers
        )
        done.overview, body = await timed(overview, client)
        read_outcome(done.overview, body)
    except httpx.HTTPError as exc:
        done.error = f"{kind}: {type(exc).__name__}"
    return done


@dataclass
class Burst:
    visits: list[Visit]
    wall: float
    #: CPU seconds used during the burst: by the gateway (all workers), by the regions,
    #: by this client process, and by the whole machine (anyone's), of ``cores * wall``.
    gateway_cpu: float
    regions_cpu: float
    client_cpu: float
    machine_busy: float
    machine_total: float
    #: By the PostgreSQL server processes of the gateway's connections (since they opened).
    postgres_cpu: float = 0.0


async def burst(
    gateway: RunningGateway,
    regions: Sequence[RunningRegion],
    people: Sequence[Person],
    issuer: Issuer,
) -> Burst:
    """Every visit at once, each person with a connection of their own (as from their
    own device: no connection is handed from one visit to another)."""
    tokens = [
        issuer.token({"personnummer": person.pnr, "scope": CITIZEN_SCOPE}) for person in people
    ]
    go = asyncio.Event()
    tls = ssl.create_default_context()  # one for all: building one per client takes 60 ms
    clients = [
        httpx.AsyncClient(base_url=gateway.base_url, timeout=120.0, verify=tls) for _ in people
    ]
    try:
        tasks = [
            asyncio.create_task(visit(client, person, token, go))
            for client, person, token in zip(clients, people, tokens, strict=True)
        ]
        await asyncio.sleep(0.2)  # every task waiting at the start line
        cpu = cpu_counters(gateway, regions)
        started = time.perf_counter()
        go.set()
        visits = await asyncio.gather(*tasks)
        wall = time.perf_counter() - started
        after = cpu_counters(gateway, regions)
        used = [end - start for start, end in zip(cpu, after, strict=True)]
    finally:
        for client in clients:
            await client.aclose()
    return Burst(list(visits), wall, *used)


def cpu_counters(gateway: RunningGateway, regions: Sequence[RunningRegion]) -> list[float]:
    busy, total = machine_cpu()
    return [
        process_tree_cpu(gateway.process.popen.pid),
        sum(process_tree_cpu(r.process.popen.pid) for r in regions),
        time.process_time(),  # this process alone: its children are the servers
        busy,
        total,
    ]


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def summarise(
    label: str, answers: Sequence[Answer | None], fault_source: str | None, deadline: float
) -> tuple[float | None, int]:
    """Print one request kind's figures; returns its median latency and how many of its
    answers missed the goal (not 200, late, or a healthy region reported failing)."""
    got = [a for a in answers if a is not None]
    if not got:
        print(f"  {label:8} no answers")
        return None, 0
    codes = Counter(a.status for a in got)
    times = [a.elapsed for a in got]
    late = sum(1 for t in times if t > deadline)
    print(
        f"  {label:8} {len(got)} answers, by status {dict(sorted(codes.items()))}; latency "
        f"median {median(times) * 1000:.0f} ms, p95 {percentile(times, 0.95) * 1000:.0f} ms, "
        f"max {max(times) * 1000:.0f} ms; within the {deadline:g} s deadline: "
        f"{len(got) - late}/{len(got)}"
    )
    served = [a for a in got if a.status == 200]
    if served:
        fan_out = [a.fan_out for a in served]
        rest = [a.elapsed - a.fan_out for a in served]
        print(
            f"{'':11}fan-out (slowest source's elapsedMs) median {median(fan_out) * 1000:.0f} ms,"
            f" max {max(fan_out) * 1000:.0f} ms; the rest of the request median "
            f"{median(rest) * 1000:.0f} ms, max {max(rest) * 1000:.0f} ms"
        )
    said: dict[str, list[float]] = {}
    for a in got:
        if a.status != 200:
            said.setdefault(f"{a.status} {a.diagnostics[:100]}", []).append(a.elapsed)
    for text, when in sorted(said.items(), key=lambda item: -len(item[1])):
        print(f"{'':11}{len(when)} x {text} (median {median(when) * 1000:.0f} ms)")
    per_source: dict[str, Counter[str]] = {}
    for answer in served:
        for source, status in answer.sources.items():
            per_source.setdefault(source, Counter())[status] += 1
    wrongly_failing = 0
    for source, statuses in sorted(per_source.items()):
        allowed = FAILURE_STATUSES | SERVED_STATUSES if source == fault_source else SERVED_STATUSES
        wrong = sum(n for status, n in statuses.items() if status not in allowed)
        wrongly_failing += wrong
        note = f"  <- {wrong} reported failing, though not faulty" if wrong else ""
        shown = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
        print(f"{'':11}{source:12} {shown}{note}")
    partial = sum(
        1
        for a in served
        if a.elapsed <= deadline
        and any(st not in SERVED_STATUSES for src, st in a.sources.items() if src != fault_source)
    )
    in_time = [a for a in got if a.elapsed <= deadline]
    whole = sum(1 for a in in_time if a.status in (200, 403)) - partial
    print(
        f"{'':11}in time and whole {whole}; in time, saying a healthy region is missing "
        f"{partial}; in time, refused {sum(1 for a in in_time if a.status not in (200, 403))}; "
        f"late {late}"
    )
    missed = sum(1 for a in got if a.status != 200 or a.elapsed > deadline)
    return median(times), missed + partial


async def run_scenario(
    name: str,
    fault: str,
    args: argparse.Namespace,
    folder: Path,
    regions: Sequence[RunningRegion],
    issuer: Issuer,
    people: Sequence[Person],
) -> Scenario:
    for region in regions:
        behaviour: dict[str, Any] = {"latency_ms": args.latency_ms, "fault": "none"}
        if region.spec.id == args.fault_region and fault != "none":
            behaviour |= {"fault": fault, "fault_rate": args.fault_rate, "seed": FAULT_SEED}
        region.set_behaviour(behaviour)
    with fresh_postgres(args.postgres) as database_url:
        gateway = start_gateway_workers(
            f"gateway-{name}",
            folder / name,
            issuer,
            region_sources(regions, SOURCE_TIMEOUT),
            folder,
            workers=args.workers,
            database_url=database_url,
            request_deadline=REQUEST_DEADLINE,
        )
        try:
            done = await burst(gateway, regions, people, issuer)
            done.postgres_cpu = postgres_cpu(database_url)
        finally:
            gateway.process.stop()  # before its database is dropped
    return Scenario(name, fault, done, log_summary(folder / f"gateway-{name}.log"))


def report(scenario: Scenario, args: argparse.Namespace, distinct: int) -> dict[str, float]:
    """Print one scenario; returns the median latency of each request kind."""
    fault_source = f"region-{args.fault_region}" if scenario.fault != "none" else None
    title = (
        "no faults"
        if fault_source is None
        else f"region {args.fault_region}: {scenario.fault} for {args.fault_rate:.0%} of requests"
    )
    done = scenario.burst
    visits = done.visits
    print(
        f"{scenario.name}: {title}; {len(visits)} visits of {distinct} different people "
        f"at once, all done in {done.wall:.1f} s"
    )
    cores = done.machine_total / done.wall if done.wall else 0.0
    ours = done.gateway_cpu + done.regions_cpu + done.client_cpu + done.postgres_cpu
    print(
        f"  CPU used in that time: gateway {done.gateway_cpu:.1f} s "
        f"({done.gateway_cpu / len(visits) * 1000:.0f} ms per visit), regions "
        f"{done.regions_cpu:.1f} s, PostgreSQL (the gateway's connections open at the end) "
        f"{done.postgres_cpu:.1f} s, "
        f"this client {done.client_cpu:.1f} s; the whole machine "
        f"{done.machine_busy:.1f} s of {done.machine_total:.1f} s ({cores:.0f} cores), so "
        f"other work on the machine {done.machine_busy - ours:.1f} s"
    )
    medians: dict[str, float] = {}
    missed = 0
    for label, answers in (
        ("search", [v.search for v in visits]),
        ("overview", [v.overview for v in visits]),
    ):
        found, late_or_wrong = summarise(label, answers, fault_source, REQUEST_DEADLINE)
        missed += late_or_wrong
        if found is not None:
            medians[label] = found
    nobody = sum(1 for v in visits if v.nobody_found)
    errors = Counter(v.error for v in visits if v.error)
    both = sum(
        1
        for v in visits
        if v.search and v.search.status == 200 and v.overview and v.overview.status == 200
    )
    print(
        f"  visits: {both} with both answers 200; {nobody} whose search found nobody "
        f"(every region holding the person failed: reported, so no overview to ask for); "
        f"{sum(errors.values())} without an HTTP answer {dict(errors) if errors else ''}"
    )
    missed += sum(errors.values())
    errors_first = sorted(scenario.log.items(), key=lambda item: (item[0][0] == "W", -item[1]))
    for message, count in errors_first[:8]:
        print(f"  gateway log: {count} x {message}")
    print(
        f"  goal (every answer 200 within the deadline, only the faulty region reported "
        f"failing): {'met' if not missed else f'NOT met ({missed} answers missed it)'}"
    )
    return medians


async def run(args: argparse.Namespace) -> None:
    population = all_people()
    people = [population[i % len(population)] for i in range(args.overviews)]
    distinct = len({p.pnr for p in people})
    with tempfile.TemporaryDirectory(prefix="samlad-bench-") as tmp:
        folder = Path(tmp)
        regions = start_regions(folder)
        try:
            issuer = Issuer.create(folder)
            print(
                f"{args.workers} gateway workers on PostgreSQL; {len(regions)} FHIR regions, "
                f"{args.latency_ms:g} ms added to each of their requests; deadline "
                f"{REQUEST_DEADLINE:g} s, region timeout {SOURCE_TIMEOUT:g} s"
            )
            results: list[tuple[Scenario, dict[str, float]]] = []
            for name, fault in [("healthy", "none"), *((f, f) for f in args.faults)]:
                scenario = await run_scenario(name, fault, args, folder, regions, issuer, people)
                results.append((scenario, report(scenario, args, distinct)))
            healthy = results[0][1]
            for scenario, medians in results[1:]:
                ratios = ", ".join(
                    f"{label} {medians[label] / healthy[label]:.2f}"
                    for label in medians
                    if label in healthy
                )
                print(f"median latency, {scenario.name} / healthy: {ratios}")
        finally:
            for region in regions:
                region.process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--overviews", type=int, default=200, help="visits at once")
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="added at every region")
    parser.add_argument("--fault-region", default="vast", choices=["nord", "vast", "syd"])
    parser.add_argument(
        "--faults",
        nargs="*",
        default=["timeout", "error-500"],
        choices=[f for f in FAULTS if f != "none"],
        help="one scenario each, after the healthy one",
    )
    parser.add_argument("--fault-rate", type=float, default=0.3, help="share of requests")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL, help="admin database URL")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
