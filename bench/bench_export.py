"""Bulk Data export against ``$everything`` of the same patients, from a warm cache.

A gateway (SQLite in a temporary folder) and its sources run as subprocesses
(``bench/harness.py``): the three simulated FHIR regions, whose people have small records
(every adult of Region Nord, or the first ``--patients``); or, with ``--bulk-people K``,
one bulk region (``bench/bulk_region.py``) holding K people with ``--resources`` lab
results each. Each person is looked up as themselves and consents to Region Nord's care
provider;
an integrator of that provider then reads each one's ``$everything`` once, so every
record is in the gateway's cache (``cache_fresh_seconds`` is an hour: no source is asked
again). Then, ``--rounds`` times, side by side in one run:

* **$everything**: each patient's ``$everything`` in one page, one after another, as the
  integrator; the resources are the matches of the answers (the Patient included);
* **export**: ``Patient/$export`` of the same patients (kick-off, polling every
  ``--poll`` seconds, then every file of the manifest fetched); the resources are the
  lines of the output files. Timed to the manifest, and to the last file.

For each: wall time, resources per second, the gateway process's CPU seconds and its peak
resident memory (VmHWM, reset before each run by writing 5 to ``/proc/<pid>/clear_refs``;
where that is not allowed, the peak since start-up). Medians of the rounds, and the
export's rate as a ratio of ``$everything``'s. MB are 10^6 bytes.

    .venv/bin/python -m bench.bench_export [--patients 70] [--rounds 3] [--per-file 100]
    .venv/bin/python -m bench.bench_export --bulk-people 40 --resources 1100
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.bench_everything import bulk_source
from bench.bulk_region import DEFAULT_TOKEN, people
from bench.harness import (
    CLINICIAN_CARE_PROVIDER,
    PERSONNUMMER_SYSTEM,
    Issuer,
    Process,
    consent_body,
    free_port,
    median,
    process_tree_cpu,
    region_sources,
    spawn,
    start_gateway,
    start_regions,
    wait_until_up,
)
from consent.scopes import CITIZEN_SCOPE
from simregions.people import people_in_region


@dataclass
class Run:
    seconds: float
    resources: int
    cpu: float
    peak: int
    #: The export's time to its manifest (the rest is fetching the files).
    to_manifest: float = 0.0

    @property
    def rate(self) -> float:
        return self.resources / self.seconds


def _memory(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def _consenting(client: httpx.AsyncClient, issuer: Issuer, people: list[str]) -> list[str]:
    """Each person's unified id, after they consented to Region Nord's provider."""
    ids = []
    for person in people:
        token = issuer.token({"personnummer": person, "scope": CITIZEN_SCOPE})
        headers = {"Authorization": f"Bearer {token}"}
        found = await client.post(
            "/Patient/_search",
            data={"identifier": f"{PERSONNUMMER_SYSTEM}|{person}"},
            headers=headers,
        )
        found.raise_for_status()
        patient_id = next(
            e["resource"]["id"]
            for e in found.json()["entry"]
            if e["resource"]["resourceType"] == "Patient"
        )
        granted = await client.post(
            "/Consent", json=consent_body(patient_id, CLINICIAN_CARE_PROVIDER), headers=headers
        )
        granted.raise_for_status()
        ids.append(patient_id)
    return ids


async def _everything(client: httpx.AsyncClient, ids: list[str]) -> int:
    resources = 0
    for patient_id in ids:
        response = await client.get(f"/Patient/{patient_id}/$everything")
        response.raise_for_status()
        bundle = orjson.loads(response.content)
        resources += sum(1 for e in bundle["entry"] if e["search"]["mode"] == "match")
    return resources


async def _export(client: httpx.AsyncClient, poll: float) -> tuple[int, float]:
    """Resources exported, and seconds to the manifest."""
    started = time.perf_counter()
    kick_off = await client.get("/Patient/$export", headers={"Prefer": "respond-async"})
    assert kick_off.status_code == 202, kick_off.text
    status = kick_off.headers["content-location"]
    while True:
        answer = await client.get(status)
        if answer.status_code == 200:
            break
        assert answer.status_code == 202, answer.text
        await asyncio.sleep(poll)
    to_manifest = time.perf_counter() - started
    resources = 0
    for item in answer.json()["output"]:
        async with client.stream("GET", item["url"]) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                resources += bool(line)
    await client.delete(status)
    return resources, to_manifest


async def _timed(pid: int, work: object) -> Run:
    _reset_peak(pid)
    cpu = process_tree_cpu(pid)
    started = time.perf_counter()
    result = await work  # type: ignore[misc]
    seconds = time.perf_counter() - started
    resources, to_manifest = result if isinstance(result, tuple) else (result, 0.0)
    return Run(seconds, resources, process_tree_cpu(pid) - cpu, _memory(pid), to_manifest)


def _sources(args: argparse.Namespace, folder: Path) -> tuple[list[Process], list[dict[str, Any]]]:
    """The sources' processes and ``[[sources]]`` entries."""
    if not args.bulk_people:
        regions = start_regions(folder)
        return [r.process for r in regions], region_sources(regions, 30.0)
    port = free_port()
    process = spawn(
        "bulk-region",
        [
            *("-m", "bench.bulk_region", "--port", str(port)),
            *("--resources", str(args.resources), "--token", DEFAULT_TOKEN),
            *("--people", str(args.bulk_people)),
        ],
        folder,
    )
    base_url = f"http://127.0.0.1:{port}/fhir"
    wait_until_up(f"{base_url}/metadata", process, timeout=180.0)
    return [process], [bulk_source(base_url, args.resources, 1000)]


async def measure(args: argparse.Namespace, folder: Path) -> None:
    issuer = Issuer.create(folder)
    servers, sources = _sources(args, folder)
    gateway = start_gateway(
        "gateway",
        folder / "gateway",
        issuer,
        sources,
        folder,
        cache_fresh_seconds=3600.0,
        rate_limit_enabled=False,
        export_patients_per_file=args.per_file,
    )
    try:
        if args.bulk_people:
            asked = [pnr for pnr, _ in people(args.bulk_people)]
        else:
            asked = [p.pnr for p in people_in_region("nord") if p.age >= 18][: args.patients]
        integrator = issuer.token(
            {
                "client_id": "bench-app",
                "care_provider_hsa_id": CLINICIAN_CARE_PROVIDER,
                "scope": "system/*.rs",
            }
        )
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=300.0) as client:
            ids = await _consenting(client, issuer, asked)
            client.headers["Authorization"] = f"Bearer {integrator}"
            warm = await _everything(client, ids)  # fills the cache
            print(f"{len(ids)} patients, {warm} resources in their $everything (warm cache)")
            pid = gateway.process.popen.pid
            rows: dict[str, list[Run]] = {"$everything": [], "export": []}
            for _ in range(args.rounds):
                rows["$everything"].append(await _timed(pid, _everything(client, ids)))
                rows["export"].append(await _timed(pid, _export(client, args.poll)))
        _report(rows)
    finally:
        gateway.process.stop()
        for server in servers:
            server.stop()


def _report(rows: dict[str, list[Run]]) -> None:
    print(
        f"{'':12} | {'resources':>9} | {'wall':>8} | {'to manifest':>11} | "
        f"{'resources/s':>11} | {'CPU s':>6} | {'peak RSS':>9}"
    )
    rates = {}
    for name, runs in rows.items():
        rates[name] = median([r.rate for r in runs])
        print(
            f"{name:12} | {runs[0].resources:9d} | {median([r.seconds for r in runs]):7.2f}s | "
            f"{median([r.to_manifest for r in runs]):10.2f}s | {rates[name]:11.0f} | "
            f"{median([r.cpu for r in runs]):6.2f} | {median([r.peak for r in runs]) / 1e6:7.1f}MB"
        )
    print(f"export / $everything (resources/s): {rates['export'] / rates['$everything']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=70)
    parser.add_argument("--bulk-people", type=int, default=0)
    parser.add_argument("--resources", type=int, default=1100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-file", type=int, default=100)
    parser.add_argument("--poll", type=float, default=0.05)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="samlad-bench-export-") as folder:
        asyncio.run(measure(args, Path(folder)))


if __name__ == "__main__":
    main()
