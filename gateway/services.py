"""The long-lived parts of one gateway process, built from settings at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from adapters.base import FhirResource
from adapters.client import source_client, tls_context
from adapters.registry import build_adapter, build_auth, check_kinds
from consent.audit import AuditLog
from consent.checkpoints import Checkpointer, CheckpointKey, JsonLinesFile
from consent.relations import GuardianRegister
from consent.standing import STANDING_TABLES, HeldStanding
from consent.standing_memory import CHANNEL, StandingMemory
from consent.store import ConsentStore
from gateway.access.callbacks import CallbackRule, callback_client
from gateway.access.export_jobs import ExportJobs
from gateway.access.exporter import Exporter
from gateway.access.notice_channels import Channels
from gateway.access.notice_outbox import NoticeOutbox
from gateway.access.notice_standing import NoticeStanding
from gateway.access.notice_worker import NoticeWorker
from gateway.access.notifier import Notifier
from gateway.access.outbox import WriteOutbox
from gateway.access.own_data import OwnData
from gateway.access.persons import PersonIndex
from gateway.access.subscriptions import Subscriptions
from gateway.access.tokens import TokenVerifier
from gateway.access.write_worker import WriteWorker
from gateway.answer.paging import PageCursorCodec
from gateway.collect.cache import RecordCache
from gateway.collect.collector import Collector
from gateway.collect.coverage import Coverages
from gateway.collect.directory import Directory
from gateway.collect.engagement import EngagementIndex
from gateway.collect.fanout import Aggregator
from gateway.collect.pools import SourcePool, source_pools
from gateway.collect.resilience import CircuitBreaker, ResiliencePolicy, ResilientAdapter
from gateway.collect.revalidate import RefreshLeases
from gateway.collect.slots import Schedules
from gateway.collect.turns import Turns
from gateway.memo import BoundedMemo
from gateway.merge.record import MergedRecord
from gateway.settings import Settings
from gateway.sources import Source, SourceReport
from store.changes import Listener, watch_writes
from store.db import Database, StoreUnavailable
from store.migrate import check_current, upgrade

log = logging.getLogger(__name__)

#: Seconds between purges of expired cache entries.
PURGE_INTERVAL = 3600.0
#: Seconds between tries to learn what a source offers, until it has answered once.
COVERAGE_RETRY_INTERVAL = 300.0


class Observer(Protocol):
    """What watches the services at work (the Prometheus metrics, ``gateway.http.metrics``)."""

    def observe_reports(self, reports: Sequence[SourceReport]) -> None: ...

    def observe_audit_append(self, seconds: float) -> None: ...

    def watch(
        self,
        breakers: Sequence[tuple[str, CircuitBreaker]],
        pools: Callable[[], Sequence[SourcePool]],
        listening: Callable[[], bool | None],
        turns: Mapping[str, Turns],
    ) -> None: ...


@dataclass
class Services:
    settings: Settings
    db: Database
    persons: PersonIndex
    aggregator: Aggregator
    tokens: TokenVerifier
    consents: ConsentStore
    guardians: GuardianRegister
    audit: AuditLog
    paging: PageCursorCodec
    engagement: EngagementIndex
    cache: RecordCache
    collector: Collector
    #: The person's own source: what they recorded themselves.
    own_data: OwnData
    #: What references point to beyond the record (Practitioner, Organization, ...).
    directory: Directory
    #: What each source shares and since when (learned in the background).
    coverage: Coverages
    #: Merged records by exact input version (see RecordReader._merge).
    merged: BoundedMemo[Any, MergedRecord]
    #: A search's matches and paging snapshot per exact read (see
    #: ``gateway.http.searches``); lists of resources the merged memo holds.
    matches: BoundedMemo[Any, tuple[list[FhirResource], str]]
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    #: Each source's HTTP client, by source id (also in ``clients``).
    source_clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    #: The Bulk Data exports this process runs (made at start, over these services).
    exports: Exporter | None = None
    housekeeping: asyncio.Task[None] | None = None
    export_timer: asyncio.Task[None] | None = None
    #: The subscriptions' delivery worker of this process (made at start).
    notifier: Notifier | None = None
    notifier_task: asyncio.Task[None] | None = None
    #: The person's notices' worker of this process (made at start).
    notice_worker: NoticeWorker | None = None
    notice_task: asyncio.Task[None] | None = None
    checkpoint_timer: asyncio.Task[None] | None = None
    #: The delivery of writes to the systems that own them (made at start).
    writes: WriteWorker | None = None
    #: Free times across the sources, and who owns the Slots they answered.
    schedules: Schedules | None = None
    writes_task: asyncio.Task[None] | None = None
    coverage_task: asyncio.Task[None] | None = None
    #: What tells this worker of changes to people's standing made by any process
    #: (PostgreSQL only), and its task.
    standing_listener: Listener | None = None
    standing_task: asyncio.Task[None] | None = None
    #: Set to stop the housekeeping tasks at the end of their current step.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    #: The time access is decided at (a consent's or a proxy grant's period is compared
    #: with it); tests move it.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        # Consents, blocks, seals and emergency accesses are recorded at the time access
        # is decided at, so that a moved clock moves both.
        self.consents.clock = self.now

    def now(self) -> datetime:
        """The time access is decided at (see :attr:`clock`)."""
        return self.clock()

    def provider_of(self, source_id: str) -> str | None:
        """The care provider HSA-id a source holds data for, if configured."""
        for source in self.aggregator.sources:
            if source.id == source_id:
                return source.config.care_provider_hsa_id
        return None

    @property
    def writable_sources(self) -> Sequence[Source]:
        """The sources writes may be routed to (their adapters say whether they take them)."""
        return self.aggregator.sources

    @classmethod
    async def start(cls, settings: Settings, metrics: Observer | None = None) -> Services:
        """Check the configuration, prepare the schema and build every collaborator
        (reporting to ``metrics`` if given)."""
        check_kinds(settings.sources)
        url = settings.effective_database_url
        if settings.should_auto_migrate:
            upgrade(url)
        else:
            check_current(url)
        db = Database(url, pool_size=settings.database_pool_size)
        clients: list[httpx.AsyncClient] = []
        source_clients: dict[str, httpx.AsyncClient] = {}
        sources: list[Source] = []
        policy = resilience_policy(settings)
        breakers: list[tuple[str, CircuitBreaker]] = []
        for config in settings.sources:
            client = source_client(
                timeout=config.timeout,
                connect_timeout=settings.connect_timeout,
                # More connections than concurrent calls would never be used.
                max_connections=settings.source_max_concurrency,
                auth=build_auth(config),
            )
            clients.append(client)
            source_clients[config.id] = client
            adapter = ResilientAdapter(build_adapter(config, client), policy)
            sources.append(Source(config, adapter))
            breakers.append((config.id, adapter.breaker))
        jwks_client = httpx.AsyncClient(timeout=5.0, follow_redirects=False, verify=tls_context())
        clients.append(jwks_client)
        register_client = httpx.AsyncClient(
            timeout=5.0, follow_redirects=False, verify=tls_context()
        )
        clients.append(register_client)
        aggregator = Aggregator(sources, settings.request_deadline)
        engagement = EngagementIndex(db, timedelta(seconds=settings.engagement_full_check_seconds))
        cache = RecordCache(
            db,
            settings.data_key.get_secret_value(),
            retention=timedelta(hours=settings.cache_retention_hours),
        )
        collector = Collector(
            aggregator,
            cache,
            engagement,
            fresh_for=timedelta(seconds=settings.cache_fresh_seconds),
            full_every=timedelta(seconds=settings.cache_full_refresh_seconds),
            stale_for=timedelta(seconds=settings.cache_stale_seconds),
            # A lease outlasts any refresh (its deadline, and a wait for a slot).
            leases=RefreshLeases(db, timedelta(seconds=max(30.0, 4 * settings.request_deadline))),
            memory_budget=settings.memory_cache_resources,
            max_refreshes=settings.max_concurrent_refreshes,
            max_streams=settings.max_concurrent_streams,
            on_collected=metrics.observe_reports if metrics else None,
        )
        log.info("gateway ready with %d source(s)", len(sources))
        services = cls(
            settings=settings,
            db=db,
            persons=PersonIndex(
                db, settings.id_key.get_secret_value(), settings.data_key.get_secret_value()
            ),
            aggregator=aggregator,
            tokens=TokenVerifier(settings.issuers, jwks_client),
            consents=ConsentStore(db, memory=standing_memory(db, settings)),
            guardians=GuardianRegister(settings.guardian_registers, register_client),
            audit=AuditLog(
                db,
                on_appended=metrics.observe_audit_append if metrics else None,
                checkpoints=checkpointer(settings),
            ),
            engagement=engagement,
            cache=cache,
            collector=collector,
            own_data=OwnData(
                db,
                settings.data_key.get_secret_value(),
                max_records=settings.own_data_max_records,
                max_bytes=settings.own_data_max_bytes,
            ),
            directory=Directory(sources, settings.directory_fresh_seconds),
            coverage=Coverages(sources, source_clients),
            merged=BoundedMemo(settings.memory_cache_resources),
            # Only references: a few bytes per match.
            matches=BoundedMemo(settings.memory_cache_resources * 10),
            paging=PageCursorCodec(b"paging:" + settings.id_key.get_secret_value().encode()),
            clients=clients,
            source_clients=source_clients,
        )
        _add_background_work(services, db, settings)
        services.standing_listener = standing_listener(services.consents.memory, db)
        if metrics is not None:
            metrics.watch(breakers, services.pools, services.listening, collector.all_turns)
        return services

    def listening(self) -> bool | None:
        """Whether this worker is told of every process's changes to people's standing;
        None where there is no such channel (SQLite)."""
        memory = self.consents.memory
        return None if self.standing_listener is None or memory is None else memory.listening

    def pools(self) -> list[SourcePool]:
        """Each source's connections in use and idle, and its concurrency slots in use."""
        return source_pools(self.aggregator.sources, self.source_clients)

    def start_housekeeping(self, every: float = PURGE_INTERVAL) -> None:
        """Purge the cache of data past its retention now and every ``every`` seconds."""

        async def purge_forever() -> None:
            while not self.stopping.is_set():
                try:
                    removed = await self.cache.purge()
                except StoreUnavailable:
                    log.warning("cache purge failed: the data store is unavailable")
                else:
                    if removed:
                        log.info("cache purge removed %d expired entries", removed)
                await self._pause(every)

        self.housekeeping = asyncio.create_task(purge_forever(), name="cache-purge")

        # The access log's time bound must hold when no entries arrive to trigger it.
        tick = checkpoint_tick(self.settings.audit_checkpoint_every_seconds)

        async def checkpoint_forever() -> None:
            while not await self._pause(tick):
                try:
                    await self.audit.checkpoint_if_due()
                except StoreUnavailable:
                    log.warning("audit checkpoint skipped: the data store is unavailable")

        self.checkpoint_timer = asyncio.create_task(checkpoint_forever(), name="audit-checkpoints")
        self.export_timer = asyncio.create_task(self._exports_forever(), name="bulk-exports")
        self.coverage_task = asyncio.create_task(
            self.coverage.run(self._pause, COVERAGE_RETRY_INTERVAL), name="source-coverage"
        )
        if self.notifier is not None:
            self.notifier_task = asyncio.create_task(self.notifier.run(), name="notifications")
        if self.standing_listener is not None:
            self.standing_task = asyncio.create_task(
                self.standing_listener.run(self._pause), name="standing-changes"
            )
        if self.notice_worker is not None:
            self.notice_task = asyncio.create_task(self.notice_worker.run(), name="notices")
        if self.writes is not None:
            self.writes_task = asyncio.create_task(self.writes.run(), name="write-deliveries")

    async def _exports_forever(self) -> None:
        """Take over the exports nobody runs (at start: those a restart left), and remove
        the expired ones, now and every few seconds."""
        exports = self.exports
        assert exports is not None
        tick = min(max(self.settings.export_lease_seconds / 4, 1.0), 30.0)
        while True:
            try:
                if not await exports.jobs.none():
                    await exports.jobs.purge(datetime.now(UTC))
                    await exports.resume()
            except StoreUnavailable:
                log.warning("bulk exports not resumed: the data store is unavailable")
            if await self._pause(tick):
                return

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` or until stopping; whether stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
        return self.stopping.is_set()

    async def aclose(self) -> None:
        # Stopped between steps, never cancelled inside one: cancelling a database
        # operation under way (aiosqlite's worker thread, a write turn) could leave the
        # shutdown waiting for it forever.
        self.stopping.set()
        if self.notifier is not None:
            self.notifier.wake()
        if self.writes is not None:
            self.writes.wake()
        for task in (
            self.housekeeping,
            self.checkpoint_timer,
            self.export_timer,
            self.notifier_task,
            self.notice_task,
            self.writes_task,
        ):
            if task is not None:
                await task
        # Only ask and listen: no step to finish.
        for reader in (self.coverage_task, self.standing_task):
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        if self.collector.revalidator is not None:
            await self.collector.revalidator.aclose()  # the refreshes of stale data
        if self.notifier is not None:
            await self.notifier.aclose()  # the refreshes a source's news started
        if self.writes is not None:
            await self.writes.aclose()  # the deliveries requests started
        if self.exports is not None:
            await self.exports.aclose()  # each running export given back after its patient
        for source in self.aggregator.sources:
            await source.adapter.aclose()
        for client in self.clients:
            await client.aclose()
        await self.audit.aclose()  # every queued access-log entry written (or failed)
        await self.db.dispose()


def standing_memory(db: Database, settings: Settings) -> StandingMemory[HeldStanding]:
    """What this worker holds of people's standing (:mod:`consent.standing_memory`),
    told of this process's own writes to it."""
    memory: StandingMemory[HeldStanding] = StandingMemory(
        max_seconds=settings.standing_memory_seconds,
        # PostgreSQL without its channel: read on every request.
        unlistened_seconds=0.0
        if db.dialect == "postgresql"
        else min(settings.standing_memory_sqlite_seconds, settings.standing_memory_seconds),
        people=settings.standing_memory_people,
    )
    watch_writes(db.engine, STANDING_TABLES, memory)
    return memory


def standing_listener(memory: StandingMemory[HeldStanding] | None, db: Database) -> Listener | None:
    """What tells ``memory`` of every process's changes (PostgreSQL only)."""
    if memory is None or db.dialect != "postgresql":
        return None
    return Listener(
        db.url,
        CHANNEL,
        on_note=memory.heard,
        on_up=memory.connected,
        on_down=memory.disconnected,
    )


def _add_background_work(services: Services, db: Database, settings: Settings) -> None:
    """The exports and the subscriptions' deliveries this process runs, over ``services``."""
    services.exports = Exporter(
        services,
        ExportJobs(
            db,
            settings.data_key.get_secret_value(),
            lease=timedelta(seconds=settings.export_lease_seconds),
        ),
        services.stopping,
    )
    # Notifications go to integrators' own endpoints, notices to people's webhooks: a
    # client of their own, which never carries a source's credentials and connects only
    # where the gateway may call (gateway.access.callbacks).
    notify_client = callback_client(CallbackRule.configured(settings))
    services.clients.append(notify_client)
    services.notifier = Notifier(
        services,
        Subscriptions(db, settings.data_key.get_secret_value()),
        notify_client,
        services.stopping,
    )
    config = settings.notices
    services.notice_worker = NoticeWorker(
        NoticeOutbox(db, settings.data_key.get_secret_value()),
        Channels(config, notify_client),
        NoticeStanding(services),
        config,
        config.link or settings.public_base_url.rstrip("/") + "/app/",
        services.stopping,
    )
    services.schedules = Schedules(services.aggregator.sources)
    services.writes = WriteWorker(
        services,
        WriteOutbox(db, settings.id_key.get_secret_value(), settings.data_key.get_secret_value()),
        services.stopping,
    )


def checkpointer(settings: Settings) -> Checkpointer:
    """What signs the access log's checkpoints, when, and where they are exported."""
    return Checkpointer(
        CheckpointKey.from_hex(settings.audit_checkpoint_key.get_secret_value()),
        every_entries=settings.audit_checkpoint_every_entries,
        every_seconds=settings.audit_checkpoint_every_seconds,
        sinks=[JsonLinesFile(settings.effective_audit_checkpoint_file)],
    )


def checkpoint_tick(every_seconds: float) -> float:
    """How often each process looks whether a checkpoint is due by time: a tenth of the
    bound, at most 5 s, so that one is written at most that late."""
    return min(every_seconds / 10, 5.0)


def resilience_policy(settings: Settings) -> ResiliencePolicy:
    """The retry, breaker and concurrency policy every source gets."""
    return ResiliencePolicy(
        attempts=settings.retry_attempts,
        backoff_base=settings.retry_backoff_base,
        backoff_cap=settings.retry_backoff_cap,
        failure_threshold=settings.breaker_failure_threshold,
        failure_window=settings.breaker_window,
        cool_down=settings.breaker_cool_down,
        max_concurrency=settings.source_max_concurrency,
    )
