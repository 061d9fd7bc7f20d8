"""Time and memory of ``$everything`` for one person with N resources: cold, warm, and
warm in a fresh process.

One source, ``bench/bulk_region.py``, holds the test person (191212121212) with N lab
results (Observations); the other five compartment types are empty. For each N a fresh
bulk region, a fresh SQLite database in a temporary folder and a fresh gateway process
(``python -m gateway.run.cli serve``, as ``bench/harness.py`` starts it) are started, so
peaks do not carry over. Each gateway starts as production does: ``python -m gateway.run.cli
migrate`` (``samlad migrate``) has brought the schema up to date beforehand, in a process
of its own, and the server runs with ``auto_migrate = false``, so it only checks the
schema revision and does not import Alembic. Then three readings:

* **start-up**: the gateway's resident memory (VmRSS) once ``/healthz`` answers; then the
  Patient search a client makes first (it resolves the unified id; the gateway asks the
  source for the Patient only);
* **cold**: ``GET /fhir/Patient/{id}/$everything``, fetched from the source (pages of
  ``--page-size``), normalised, stored in the gateway's cache, merged and rendered;
* **warm, same process**: the same again, served from the cache of normalised data
  (``cache_fresh_seconds`` is set to an hour, so the source is not asked). The process
  keeps the heap the cold request grew (CPython and glibc seldom give memory back), so
  its peak is mostly the cold request's, not the warm path's own;
* **warm, fresh process**: that gateway is stopped and a new one started on the same
  folder and database, with the same sources and settings; after its start-up (VmRSS
  again) and the Patient search (the cache is fresh, so the source is not asked for
  data), one ``$everything``, which must be served from the cache: the warm path's own
  peak.

For each request: wall time as the client sees it (until the last byte), response size,
the gateway process's peak resident memory during the request (VmHWM from
``/proc/<pid>/status``, reset before the request by writing 5 to ``/proc/<pid>/clear_refs``;
where that is not allowed, the peak since start-up) and its resident memory afterwards,
and the CPU time the gateway used. The goal (spec): memory flat in N (streamed), at most
150 MB resident; the conclusion is drawn from the cold and the fresh-process warm peaks.
MB here are 10^6 bytes.

``--profile`` runs the gateway in this process instead (uvicorn in a thread) with
``tracemalloc`` on, and reports for the cold and warm request the traced Python memory
per step of the request path (peak above the step's start, and what the step leaves
behind: paging, normalising and sealing, storing, the stream's plan pass), plus the
largest live allocation sites once the stream is planned, before it is sent.
It is slower (tracemalloc traces every allocation) and makes no timing claims.

    .venv/bin/python -m bench.bench_everything [--sizes 5000 20000 50000] [--page-size 1000]
    .venv/bin/python -m bench.bench_everything --profile [--sizes 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import linecache
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bulk_region import DEFAULT_TOKEN
from bench.harness import (
    ROOT,
    Issuer,
    Overview,
    Process,
    RunningGateway,
    everything,
    free_port,
    memory_of,
    open_gateway,
    process_tree_cpu,
    spawn,
    start_gateway,
    wait_until_up,
    write_gateway_config,
)
from fhir_profiles.identifiers import PERSONNUMMER_SYSTEM

#: Generous on purpose: the bench measures time and memory, not the deadline (the
#: source timeout can be at most 120 s).
BENCH_TIMEOUT = 120.0
DEFAULT_SIZES = (5_000, 20_000, 50_000)
DEFAULT_PROFILE_SIZES = (5_000,)
DEFAULT_PAGE_SIZE = 1000
GOAL_MB = 150.0
#: Gateway settings for this bench (see the module docstring).
GATEWAY_SETTINGS: dict[str, Any] = {
    "request_deadline": BENCH_TIMEOUT,
    "rate_limit_enabled": False,
    "cache_fresh_seconds": 3600.0,
}
SOURCE_ID = "bulk"
#: The setting that decides what a warm read finds decoded in memory (its default).
MEMO_SETTING = "memory_cache_resources"


def mb(n_bytes: float) -> float:
    return n_bytes / 1e6


# -- the source ----------------------------------------------------------------------------


def start_bulk_region(resources: int, log_dir: Path) -> tuple[Process, str]:
    """``bench.bulk_region`` with ``resources`` Observations; returns it and its FHIR base."""
    port = free_port()
    process = spawn(
        f"bulk-region-{resources}",
        [
            "-m",
            "bench.bulk_region",
            "--port",
            str(port),
            "--resources",
            str(resources),
            "--token",
            DEFAULT_TOKEN,
        ],
        log_dir,
    )
    base_url = f"http://127.0.0.1:{port}/fhir"
    wait_until_up(f"{base_url}/metadata", process, timeout=180.0)
    return process, base_url


def bulk_source(base_url: str, resources: int, page_size: int) -> dict[str, Any]:
    """The ``[[sources]]`` entry for the bulk region: big pages, and a page cap above
    what the record needs (reaching the cap is an error, not a truncation)."""
    pages = -(-resources // page_size)
    return {
        "id": SOURCE_ID,
        "name": "Bulk region",
        "kind": "fhir-r4",
        "base_url": base_url,
        "care_provider_hsa_id": "SE2321009099-BULK",
        "timeout": BENCH_TIMEOUT,
        "auth": {"type": "bearer", "token": DEFAULT_TOKEN},
        "dialect": {
            "page_size": page_size,
            "page_cap": max(100, pages + 10),
            # The bulk region finds a person by one identifier form only, as some real
            # sources do: the source entry says which.
            "identifier_system": PERSONNUMMER_SYSTEM,
            "identifier_format": "canonical",
        },
    }


# -- /proc -----------------------------------------------------------------------------------


def reset_peak(pid: int) -> bool:
    """Set ``pid``'s VmHWM back to its current RSS; False where /proc does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- one request ---------------------------------------------------------------------------


@dataclass
class Reading:
    """One timed ``$everything`` and the gateway's memory around it."""

    overview: Overview
    peak: int = 0
    rss_after: int = 0
    cpu: float = 0.0
    #: Whether ``peak`` is this request's own (else the peak since start-up).
    peak_reset: bool = True


async def measure(gateway: RunningGateway) -> Reading:
    """One ``$everything`` with the gateway process's peak reset just before it."""
    pid = gateway.process.popen.pid
    peak_reset = reset_peak(pid)
    cpu = process_tree_cpu(pid)
    reading = Reading(await everything(gateway), peak_reset=peak_reset)
    reading.cpu = process_tree_cpu(pid) - cpu
    memory = memory_of(pid)
    reading.peak, reading.rss_after = memory["VmHWM"], memory["VmRSS"]
    return reading


def check(resources: int, name: str, reading: Reading, status: str) -> None:
    """The answer holds the Patient and every Observation, and the source has ``status``
    (``ok``: fetched; ``cached``: from the cache of normalised data)."""
    if reading.overview.total != resources + 1:
        raise RuntimeError(f"N={resources}: {name} answer has {reading.overview.total} entries")
    if reading.overview.statuses.get(SOURCE_ID) != status:
        raise RuntimeError(
            f"N={resources}: {name} read: source status is not {status!r}:"
            f" {reading.overview.statuses}"
        )


# -- one size, measured in gateway subprocesses ----------------------------------------------


@dataclass
class SizeResult:
    resources: int
    startup_rss: int
    before_rss: int
    cold: Reading
    #: Served from the cache by the process that served ``cold``.
    warm: Reading
    #: A new gateway process's RSS once it answers, on the same database.
    fresh_startup_rss: int
    #: Served from the cache by that new process (after its Patient search).
    fresh_warm: Reading

    @property
    def peak_reset(self) -> bool:
        """Whether the peaks are per request (else since start-up)."""
        return all(r.peak_reset for r in (self.cold, self.warm, self.fresh_warm))


def start_bench_gateway(
    name: str, resources: int, folder: Path, issuer: Issuer, base_url: str, page_size: int
) -> RunningGateway:
    """A gateway for the bulk region on the SQLite database of this N's folder, migrated
    beforehand by ``samlad migrate`` (auto-migrate off), as production starts it."""
    return start_gateway(
        name,
        folder / f"gateway-{resources}",
        issuer,
        [bulk_source(base_url, resources, page_size)],
        folder,
        migrated=True,
        **GATEWAY_SETTINGS,
    )


async def stop_gateway(gateway: RunningGateway) -> None:
    if hasattr(gateway, "client"):
        await gateway.client.aclose()
    gateway.process.stop()


async def measure_size(resources: int, folder: Path, issuer: Issuer, page_size: int) -> SizeResult:
    region: Process | None = None
    gateways: list[RunningGateway] = []
    try:
        region, base_url = start_bulk_region(resources, folder)
        # The first process: start-up, Patient search, cold, warm.
        gateway = start_bench_gateway(
            f"gateway-{resources}", resources, folder, issuer, base_url, page_size
        )
        gateways.append(gateway)
        pid = gateway.process.popen.pid
        startup_rss = memory_of(pid)["VmRSS"]
        await open_gateway(gateway)
        before_rss = memory_of(pid)["VmRSS"]
        cold = await measure(gateway)
        check(resources, "cold", cold, "ok")
        warm = await measure(gateway)
        check(resources, "warm", warm, "cached")
        await stop_gateway(gateway)
        # A second process on the same database: warm, without the cold request's heap.
        fresh = start_bench_gateway(
            f"gateway-{resources}-fresh", resources, folder, issuer, base_url, page_size
        )
        gateways.append(fresh)
        fresh_startup_rss = memory_of(fresh.process.popen.pid)["VmRSS"]
        await open_gateway(fresh)
        fresh_warm = await measure(fresh)
        check(resources, "warm (fresh process)", fresh_warm, "cached")
        return SizeResult(
            resources, startup_rss, before_rss, cold, warm, fresh_startup_rss, fresh_warm
        )
    except Exception:
        show_logs(folder)
        raise
    finally:
        for running in reversed(gateways):
            await stop_gateway(running)
        if region is not None:
            region.stop()


def show_logs(folder: Path, lines: int = 15) -> None:
    for log in sorted(folder.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        if tail:
            print(f"--- {log.name} (last {len(tail)} lines)")
            print("\n".join(tail))


def report(results: Sequence[SizeResult], page_size: int) -> None:
    print()
    print(
        f"$everything, one source, pages of {page_size}; a fresh gateway process per N"
        f" (SQLite, migrated first by `samlad migrate`, auto-migrate off; {MEMO_SETTING}"
        f" {GATEWAY_SETTINGS.get(MEMO_SETTING, 'at its default')}), and for the last"
        " reading a second one on the same database; MB = 10^6 bytes"
    )
    if not all(r.peak_reset for r in results):
        print("(VmHWM could not be reset: peaks are since start-up)")
    print(
        f"{'':>10} | {'cold':^39} | {'warm, same process':^29} |"
        f" {'warm, fresh process':^39} | {'':>9}"
    )
    print(
        f"{'resources':>10} | {'start-up':>9} {'time':>9} {'peak':>9} {'after':>9} |"
        f" {'time':>9} {'peak':>9} {'after':>9} |"
        f" {'start-up':>9} {'time':>9} {'peak':>9} {'after':>9} | {'response':>9}"
    )
    print(
        f"{'':>10} | {'RSS':>9} {'':>9} {'RSS':>9} {'RSS':>9} |"
        f" {'':>9} {'RSS':>9} {'RSS':>9} |"
        f" {'RSS':>9} {'':>9} {'RSS':>9} {'RSS':>9} | {'size':>9}"
    )
    for r in results:
        print(
            f"{r.resources:>10,} | {mb(r.startup_rss):>6.1f} MB"
            f" {r.cold.overview.elapsed * 1000:>6,.0f} ms {mb(r.cold.peak):>6.1f} MB"
            f" {mb(r.cold.rss_after):>6.1f} MB |"
            f" {r.warm.overview.elapsed * 1000:>6,.0f} ms {mb(r.warm.peak):>6.1f} MB"
            f" {mb(r.warm.rss_after):>6.1f} MB |"
            f" {mb(r.fresh_startup_rss):>6.1f} MB"
            f" {r.fresh_warm.overview.elapsed * 1000:>6,.0f} ms"
            f" {mb(r.fresh_warm.peak):>6.1f} MB {mb(r.fresh_warm.rss_after):>6.1f} MB |"
            f" {mb(r.cold.overview.size):>6.1f} MB"
        )
    print()
    print(
        f"{'resources':>10} | {'fetch':>9} | {'gateway CPU':^23} |"
        f" {'(peak - start-up RSS) / N':^32} | {'response':>8} | {'RSS before':>10}"
    )
    print(
        f"{'':>10} | {'(cold)':>9} | {'cold':>7} {'warm':>7} {'fresh':>7} |"
        f" {'cold':>10} {'warm':>10} {'fresh':>10} | {'per res.':>8} | {'cold':>10}"
    )
    for r in results:
        cold_per = (r.cold.peak - r.startup_rss) / r.resources
        warm_per = (r.warm.peak - r.startup_rss) / r.resources
        fresh_per = (r.fresh_warm.peak - r.fresh_startup_rss) / r.resources
        print(
            f"{r.resources:>10,} | {r.cold.overview.fan_out * 1000:>6,.0f} ms |"
            f" {r.cold.cpu:>5.1f} s {r.warm.cpu:>5.1f} s {r.fresh_warm.cpu:>5.1f} s |"
            f" {cold_per / 1000:>7.1f} kB {warm_per / 1000:>7.1f} kB"
            f" {fresh_per / 1000:>7.1f} kB |"
            f" {r.cold.overview.size / (r.resources + 1):>6,.0f} B | {mb(r.before_rss):>7.1f} MB"
        )
    print(
        "fetch: the source's elapsedMs in the gateway's status; warm: same process; fresh:"
        " warm, fresh process (against its own start-up RSS); RSS before cold: after the"
        " Patient search"
    )
    print()
    print(conclusion(results))


def growth_per_10k(results: Sequence[SizeResult], peak: Callable[[SizeResult], int]) -> float:
    """Bytes of peak RSS more per 10,000 resources, smallest N to largest; 0 for one N."""
    small, large = results[0], results[-1]
    if large.resources <= small.resources:
        return 0.0
    return (peak(large) - peak(small)) / (large.resources - small.resources) * 10_000


def conclusion(results: Sequence[SizeResult]) -> str:
    """The goal judged on the cold peak and the warm peak of a fresh process; the warm
    peak of the process that served the cold request is mostly that request's heap."""
    worst = max(max(r.cold.peak, r.fresh_warm.peak) for r in results)
    large = results[-1]
    cold_growth = growth_per_10k(results, lambda r: r.cold.peak)
    fresh_growth = growth_per_10k(results, lambda r: r.fresh_warm.peak)
    if len({r.resources for r in results}) > 1:
        growth = (
            f"peak RSS grows ~{mb(cold_growth):.0f} MB per 10,000 resources cold and"
            f" ~{mb(fresh_growth):.0f} MB warm (fresh process)"
        )
    else:
        growth = "one size only, so no growth figure"
    # "Flat": under 5 MB more per 10,000 resources.
    met = mb(worst) <= GOAL_MB and max(cold_growth, fresh_growth) < 5e6
    verdict = "met" if met else "NOT met"
    same = max(r.warm.peak for r in results)
    return (
        f"Conclusion: {growth}, worst peak (cold or warm in a fresh process)"
        f" {mb(worst):.0f} MB at N={large.resources:,}: goal (flat, <= {GOAL_MB:.0f} MB)"
        f" {verdict}. (Warm in the same process, after the cold request: peak up to"
        f" {mb(same):.0f} MB, the cold request's heap kept.)"
    )


async def run(sizes: Sequence[int], page_size: int) -> None:
    results: list[SizeResult] = []
    with tempfile.TemporaryDirectory(prefix="samlad-bench-") as tmp:
        folder = Path(tmp)
        issuer = Issuer.create(folder)
        for resources in sizes:
            print(f"N={resources:,}: starting a bulk region and a fresh gateway ...", flush=True)
            result = await measure_size(resources, folder, issuer, page_size)
            cold, warm, fresh = result.cold, result.warm, result.fresh_warm
            print(
                f"  cold {cold.overview.elapsed * 1000:,.0f} ms, peak {mb(cold.peak):.1f} MB;"
                f" warm {warm.overview.elapsed * 1000:,.0f} ms, peak {mb(warm.peak):.1f} MB;"
                f" warm in a fresh process {fresh.overview.elapsed * 1000:,.0f} ms,"
                f" peak {mb(fresh.peak):.1f} MB",
                flush=True,
            )
            results.append(result)
    report(results, page_size)


# -- --profile: where the memory goes, in this process with tracemalloc -------------------


@dataclass(eq=False)
class _Frame:
    name: str
    start: int
    peak: int


@dataclass
class StageFigures:
    calls: int = 0
    #: Highest traced memory above the stage's start, over its calls.
    peak_above_start: int = 0
    #: Traced memory at the stage's end minus at its start, summed over its calls
    #: (including whatever else ran meanwhile, for steps that run concurrently).
    retained: int = 0


@dataclass
class Tracker:
    """Traced memory per step of one request; steps may nest and overlap (tasks).

    ``tracemalloc`` keeps one peak for the whole process. At every step's start and end
    the peak so far is handed to every step still open and then reset, so each step
    ends up with the highest traced memory during its own lifetime.
    """

    label: str | None = None
    open: list[_Frame] = field(default_factory=list)
    figures: dict[tuple[str, str], StageFigures] = field(default_factory=dict)
    snapshots: dict[str, tracemalloc.Snapshot] = field(default_factory=dict)

    def _fold(self) -> int:
        current, peak = tracemalloc.get_traced_memory()
        for frame in self.open:
            frame.peak = max(frame.peak, peak)
        tracemalloc.reset_peak()
        return current

    def enter(self, name: str) -> _Frame:
        current = self._fold()
        frame = _Frame(name, current, current)
        self.open.append(frame)
        return frame

    def leave(self, frame: _Frame) -> None:
        current = self._fold()
        self.open.remove(frame)
        assert self.label is not None
        figures = self.figures.setdefault((self.label, frame.name), StageFigures())
        figures.calls += 1
        figures.peak_above_start = max(figures.peak_above_start, frame.peak - frame.start)
        figures.retained += current - frame.start

    @property
    def active(self) -> bool:
        """Only while a measured request is open (not during the Patient search)."""
        return self.label is not None and bool(self.open)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if not self.active:
            yield
            return
        frame = self.enter(name)
        try:
            yield
        finally:
            self.leave(frame)


#: (step, depth, module, class or None, attribute): the request path's steps, probed.
STAGES: tuple[tuple[str, int, str, str | None, str], ...] = (
    ("collect (cache or sources)", 1, "gateway.collect.collector", "Collector", "collect"),
    ("fan-out (all sources)", 2, "gateway.collect.fanout", "Aggregator", "gather"),
    ("adapter search, per type", 3, "adapters.fhir_r4", "FhirR4Adapter", "search_all"),
    ("one page: read + parse", 4, "adapters.fhir_r4", "FhirR4Adapter", "_fetch"),
    ("one page: normalise + seal", 4, "gateway.collect.pages", "NormalisingSink", "take"),
    ("store the sealed answer", 3, "gateway.collect.cache", "RecordCache", "store"),
    ("owner index write", 4, "gateway.collect.owners", "OwnerIndex", "replace"),
    ("stream: plan pass", 1, "gateway.answer.streamed", "RecordStream", "_plan_pass"),
    ("access log", 1, "gateway.access.reader", "RecordReader", "log"),
)
#: The step after which the live allocations are listed: the answer is planned, its
#: emitting not begun.
SNAPSHOT_AFTER = "stream: plan pass"


def _snapshot(tracker: Tracker, name: str) -> None:
    if name == SNAPSHOT_AFTER and tracker.active and tracker.label not in tracker.snapshots:
        assert tracker.label is not None
        tracker.snapshots[tracker.label] = tracemalloc.take_snapshot()


def _probe(tracker: Tracker, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def async_probe(*args: Any, **kwargs: Any) -> Any:
            with tracker.stage(name):
                result = await original(*args, **kwargs)
            _snapshot(tracker, name)
            return result

        return async_probe

    @functools.wraps(original)
    def probe(*args: Any, **kwargs: Any) -> Any:
        with tracker.stage(name):
            result = original(*args, **kwargs)
        _snapshot(tracker, name)
        return result

    return probe


@contextmanager
def probes_installed(tracker: Tracker) -> Iterator[None]:
    """Wrap each step of :data:`STAGES` in a probe (this process only); undone after."""
    import importlib

    undo: list[tuple[Any, str, Any]] = []
    try:
        for name, _, module_name, holder_name, attribute in STAGES:
            module = importlib.import_module(module_name)
            holder = getattr(module, holder_name) if holder_name else module
            original = holder.__dict__[attribute] if holder_name else getattr(module, attribute)
            undo.append((holder, attribute, original))
            setattr(holder, attribute, _probe(tracker, name, original))
        yield
    finally:
        for holder, attribute, original in reversed(undo):
            setattr(holder, attribute, original)


async def profiled_requests(
    gateway: RunningGateway, tracker: Tracker
) -> dict[str, tuple[int, int, int, int]]:
    """Cold and warm ``$everything``, the body streamed and counted, not kept. Returns
    label -> (traced at start, peak, traced after, response bytes)."""
    await open_gateway(gateway)
    figures: dict[str, tuple[int, int, int, int]] = {}
    for label in ("cold", "warm"):
        tracker.label = label
        frame = tracker.enter("whole request")
        size = 0
        try:
            url = f"/Patient/{gateway.patient_id}/$everything"
            async with gateway.client.stream("GET", url) as response:
                response.raise_for_status()
                async for chunk in response.aiter_raw():
                    size += len(chunk)
        finally:
            tracker.leave(frame)
        after = tracemalloc.get_traced_memory()[0]
        figures[label] = (frame.start, frame.peak, after, size)
        tracker.label = None
    return figures


def profile_size(resources: int, folder: Path, issuer: Issuer, page_size: int) -> None:
    from gateway.run.app import create_app
    from gateway.settings import load_settings
    from simregions.server import start_in_thread

    region, base_url = start_bulk_region(resources, folder)
    tracker = Tracker()
    try:
        port = free_port()
        config = write_gateway_config(
            folder / f"gateway-{resources}",
            port,
            issuer,
            [bulk_source(base_url, resources, page_size)],
            **GATEWAY_SETTINGS,
        )
        tracemalloc.start()
        with probes_installed(tracker):
            server = start_in_thread(create_app(load_settings(config)), port=port)
            try:
                startup = tracemalloc.get_traced_memory()[0]
                # The gateway runs here; open_gateway only needs its port and a token.
                gateway = RunningGateway(port, region, issuer.citizen_token())
                figures = asyncio.run(_profiled(gateway, tracker))
            finally:
                server.stop()
        print_profile(resources, startup, figures, tracker)
    finally:
        tracemalloc.stop()
        region.stop()


async def _profiled(
    gateway: RunningGateway, tracker: Tracker
) -> dict[str, tuple[int, int, int, int]]:
    try:
        return await profiled_requests(gateway, tracker)
    finally:
        if hasattr(gateway, "client"):
            await gateway.client.aclose()


def _where(frame: tracemalloc.Frame) -> str:
    path = Path(frame.filename)
    try:
        shown = str(path.relative_to(ROOT))
    except ValueError:
        parts = path.parts
        shown = (
            "/".join(parts[parts.index("site-packages") + 1 :])
            if "site-packages" in parts
            else path.name
        )
    text = linecache.getline(frame.filename, frame.lineno).strip()
    return f"{shown}:{frame.lineno}  {text[:60]}"


def print_profile(
    resources: int,
    startup: int,
    figures: dict[str, tuple[int, int, int, int]],
    tracker: Tracker,
) -> None:
    print()
    print(
        f"--profile, N={resources:,}: traced Python memory (tracemalloc, started after the"
        f" imports; RSS is higher: code, interpreter, allocator slack); at start-up"
        f" {mb(startup):.1f} MB"
    )
    for label in ("cold", "warm"):
        start, peak, after, size = figures[label]
        print()
        print(
            f"{label}: response {mb(size):.1f} MB; traced at start {mb(start):.1f} MB, peak"
            f" {mb(peak):.1f} MB (+{mb(peak - start):.1f}), after {mb(after):.1f} MB"
            f" (+{mb(after - start):.1f} kept)"
        )
        print(f"  {'step':<32} {'calls':>5} {'peak above its start':>21} {'left behind':>12}")
        for name, depth, *_ in STAGES:
            stage = tracker.figures.get((label, name))
            if stage is None:
                continue
            indent = "  " * (depth - 1)
            print(
                f"  {indent + name:<32} {stage.calls:>5} {mb(stage.peak_above_start):>18.1f} MB"
                f" {mb(stage.retained):>+9.1f} MB"
            )
        snapshot = tracker.snapshots.get(label)
        if snapshot is None:
            continue
        snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        stats = snapshot.statistics("lineno")
        total = sum(s.size for s in stats)
        print(
            f"  live once the stream is planned: {mb(total):.1f} MB; largest allocation sites"
            " (source text as on disk now):"
        )
        for stat in stats[:12]:
            print(
                f"  {mb(stat.size):>7.1f} MB {stat.count:>9,} blocks  {_where(stat.traceback[0])}"
            )


def profile(sizes: Sequence[int], page_size: int) -> None:
    with tempfile.TemporaryDirectory(prefix="samlad-bench-") as tmp:
        folder = Path(tmp)
        issuer = Issuer.create(folder)
        for resources in sizes:
            print(f"N={resources:,}: profiling in this process ...", flush=True)
            try:
                profile_size(resources, folder, issuer, page_size)
            except Exception:
                show_logs(folder)
                raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        help=f"resources per person (default {' '.join(map(str, DEFAULT_SIZES))}; "
        f"with --profile {' '.join(map(str, DEFAULT_PROFILE_SIZES))})",
    )
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument(
        f"--{MEMO_SETTING.replace('_', '-')}",
        type=int,
        default=None,
        help="the gateway's in-memory copies of cached data (default: the gateway's default)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="in-process tracemalloc breakdown instead"
    )
    args = parser.parse_args()
    sizes = sorted(args.sizes or (DEFAULT_PROFILE_SIZES if args.profile else DEFAULT_SIZES))
    if sizes[0] < 1:
        parser.error("--sizes must be at least 1")
    if not 1 <= args.page_size <= 1000:
        parser.error("--page-size must be from 1 to 1000")
    memo = getattr(args, MEMO_SETTING)
    if memo is not None:
        if memo < 0:
            parser.error(f"--{MEMO_SETTING.replace('_', '-')} must be at least 0")
        GATEWAY_SETTINGS[MEMO_SETTING] = memo
    if args.profile:
        profile(sizes, args.page_size)
    else:
        asyncio.run(run(sizes, args.page_size))


if __name__ == "__main__":
    main()
