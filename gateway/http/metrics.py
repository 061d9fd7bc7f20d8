"""Prometheus metrics: one registry per app, served at ``/metrics`` to holders of a token.

Nothing here is labelled with anything personal: requests by route *template* (never
the concrete path, which holds patient ids), sources by their configured id, statuses
and outcomes from fixed small sets.

Several worker processes (``samlad serve --workers N``): the supervisor gives the run a
fresh directory in ``PROMETHEUS_MULTIPROC_DIR`` (:mod:`gateway.run.workers`), every process
records into its files, and whichever worker answers a scrape reads them all, so counters
and histograms are the server's totals (a worker that died keeps its counts). Circuit
breakers and connection pools belong to one process each: their gauges carry a ``pid``
label there, and a dead worker's are dropped.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from consent.standing_memory import CHANNEL
from gateway.collect.pools import SourcePool
from gateway.collect.resilience import BreakerState, CircuitBreaker
from gateway.collect.turns import Turns
from gateway.errors import NotFound, Unauthorized
from gateway.http.answered import Answered
from gateway.settings import Settings
from gateway.sources import SourceReport, SourceStatus

#: prometheus-client's multiprocess mode: the directory every worker records metrics in.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

#: Request latency buckets (seconds): most answers take milliseconds, a cold overview
#: up to its deadline (5 s by default).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Audit appends are group-committed and usually take a few milliseconds.
AUDIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

#: What a read did with the cache, per source: served fresh cached data (``hit``), asked
#: the source (``miss``), fell back to cached data when the source failed (``stale``), or
#: served data past its freshness while it is refreshed in the background (``revalidating``).
_CACHE_RESULTS = {
    SourceStatus.CACHED: "hit",
    SourceStatus.STALE: "stale",
    SourceStatus.REVALIDATING: "revalidating",
}
#: Reports of sources that were not asked: no fetch to time.
_NOT_FETCHED = (SourceStatus.CACHED, SourceStatus.NOT_ASKED, SourceStatus.REVALIDATING)


#: Where the gauges read each source's breaker and pool (set once the services start).
Breakers = Sequence[tuple[str, CircuitBreaker]]
Pools = Callable[[], Sequence[SourcePool]]
#: Whether the worker is told of every process's changes to people's standing (None:
#: there is no such channel, SQLite).
Listening = Callable[[], bool | None]
#: The worker's turns (:class:`~gateway.collect.turns.Turns`), by the work they are for.
AllTurns = Mapping[str, Turns]


def _process_gauge(
    name: str, documentation: str, labels: list[str], registry: CollectorRegistry | None
) -> Gauge:
    """A gauge of one process's state (a breaker, a pool, its turns): with several workers,
    each worker's own samples (``pid`` label), a dead worker's dropped."""
    return Gauge(name, documentation, labels, multiprocess_mode="liveall", registry=registry)


class Metrics:
    """The gateway's metrics, in a registry of its own (none at import time)."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "samlad_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "samlad_http_request_duration_seconds",
            "Time to the end of the answer, by method and route template.",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.source_reports = Counter(
            "samlad_source_reports",
            "What each source did for a read: its status in the answer.",
            ["source", "status"],
            registry=registry,
        )
        self.source_fetch_seconds = Histogram(
            "samlad_source_fetch_duration_seconds",
            "Time a source took when it was asked, by outcome (ok, no-data, timeout, failed).",
            ["source", "outcome"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.cache_reads = Counter(
            "samlad_cache_reads",
            "Per source and read: cached data served fresh (hit), the source asked (miss), "
            "or cached data served because the source failed (stale).",
            ["source", "result"],
            registry=registry,
        )
        self.audit_append_seconds = Histogram(
            "samlad_audit_append_duration_seconds",
            "Time from an access-log append until its entry is committed.",
            buckets=AUDIT_BUCKETS,
            registry=registry,
        )
        self.circuit = _process_gauge(
            "samlad_source_circuit_state",
            "1 for the state each source's circuit breaker is in (per process).",
            ["source", "state"],
            registry,
        )
        self.connections = _process_gauge(
            "samlad_source_connections",
            "Connections of each source's HTTP pool, in use and idle, and requests waiting "
            "for one (per process).",
            ["source", "state"],
            registry,
        )
        self.slots = _process_gauge(
            "samlad_source_slots",
            "Each source's concurrency slots, in use and in all (per process).",
            ["source", "state"],
            registry,
        )
        self.standing_listening = _process_gauge(
            "samlad_standing_listening",
            "1 while the worker is told of every process's changes to people's standing "
            "(PostgreSQL), 0 while not: every request then reads the standing (per process).",
            ["channel"],
            registry,
        )
        self.turns = _process_gauge(
            "samlad_turns",
            "Requests holding a turn (in-use) and waiting for one (waiting), by the work "
            "it is for: asking sources, or reading the cache for a streamed answer (per "
            "process).",
            ["work", "state"],
            registry,
        )
        self.turns_refused = Counter(
            "samlad_turns_refused",
            "Requests that had no turn in time, by the work it was for: answered at once, "
            "their sources reported timeout (sources) or with 503 (streams).",
            ["work"],
            registry=registry,
        )
        self._breakers: Breakers = ()
        self._pools: Pools = tuple
        self._listening: Listening = lambda: None
        self._turns: AllTurns = {}
        self._refused_counted: dict[str, int] = {}

    @classmethod
    def from_environment(cls) -> Metrics:
        """Metrics in multiprocess mode when the server runs several workers."""
        return cls(os.environ.get(METRICS_DIR_VARIABLE) or None)

    def watch(
        self, breakers: Breakers, pools: Pools, listening: Listening, turns: AllTurns
    ) -> None:
        """Show these sources' breakers, the pools ``pools`` reads, whether the worker
        is ``listening`` for changes to people's standing and its ``turns`` (set once the
        services have started)."""
        self._breakers, self._pools, self._listening = tuple(breakers), pools, listening
        self._turns = turns
        self.refresh_gauges()

    def refresh_gauges(self) -> None:
        """Read the watched breakers and pools into their gauges."""
        for source_id, breaker in self._breakers:
            current = breaker.state
            for state in BreakerState:
                self.circuit.labels(source_id, state.value).set(state is current)
        for pool in self._pools():
            self.connections.labels(pool.source_id, "in-use").set(pool.connections_in_use)
            self.connections.labels(pool.source_id, "idle").set(pool.connections_idle)
            self.connections.labels(pool.source_id, "waiting").set(pool.requests_waiting)
            self.slots.labels(pool.source_id, "in-use").set(pool.slots_in_use)
            self.slots.labels(pool.source_id, "total").set(pool.slots)
        if (listening := self._listening()) is not None:
            self.standing_listening.labels(CHANNEL).set(listening)
        for work, turns in self._turns.items():
            self.turns.labels(work, "in-use").set(turns.in_use)
            self.turns.labels(work, "waiting").set(turns.waiting)
            refused = turns.refused - self._refused_counted.get(work, 0)
            if refused:
                self.turns_refused.labels(work).inc(refused)
            self._refused_counted[work] = turns.refused

    def observe_request(self, answered: Answered) -> None:
        """Count and time one HTTP request by method, route template and status (read
        from :class:`~gateway.http.answered.NoteAnswers`)."""
        self.requests.labels(answered.method, answered.route, str(answered.status)).inc()
        self.request_seconds.labels(answered.method, answered.route).observe(answered.seconds)

    def observe_reports(self, reports: Sequence[SourceReport]) -> None:
        """Count one read's per-source reports (its final statuses)."""
        for report in reports:
            self.source_reports.labels(report.source_id, report.status.value).inc()
            if report.status is SourceStatus.NOT_ASKED:
                continue
            self.cache_reads.labels(
                report.source_id, _CACHE_RESULTS.get(report.status, "miss")
            ).inc()
            if report.status not in _NOT_FETCHED:
                self.source_fetch_seconds.labels(report.source_id, _outcome(report)).observe(
                    report.elapsed_ms / 1000
                )
        self.refresh_gauges()

    def observe_audit_append(self, seconds: float) -> None:
        self.audit_append_seconds.observe(seconds)

    def exposition(self) -> bytes:
        """The text format of every metric (all workers' in multiprocess mode)."""
        self.refresh_gauges()
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


def _outcome(report: SourceReport) -> str:
    """How the source's fetch ended, whatever the cache then served."""
    if report.status is SourceStatus.STALE:
        return "timeout" if report.reason == "timeout" else "failed"
    return report.status.value


def build_metrics_router(settings: Settings) -> APIRouter:
    """``GET /metrics``: only with ``Authorization: Bearer <metrics_token>``; not served
    at all when no token is configured."""
    router = APIRouter(include_in_schema=False)
    token = settings.metrics_token

    @router.get("/metrics")
    async def metrics(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        if token is None:
            raise NotFound("unknown path")
        expected = f"Bearer {token.get_secret_value()}".encode()
        if not hmac.compare_digest((authorization or "").encode(), expected):
            raise Unauthorized("the metrics token is required")
        body = request.app.state.metrics.exposition()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
