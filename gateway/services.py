"""The long-lived parts of one gateway process, built from settings at start-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from adapters.registry import build_adapter, build_auth, check_kinds
from consent.audit import AuditLog
from consent.relations import GuardianRegister
from consent.store import ConsentStore
from gateway.aggregate import Aggregator, Source
from gateway.engagement import EngagementIndex
from gateway.paging import PageCursorCodec
from gateway.persons import PersonIndex
from gateway.resilience import ResiliencePolicy, ResilientAdapter
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.migrate import check_current, upgrade
from gateway.tokens import TokenVerifier

log = logging.getLogger(__name__)


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
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def provider_of(self, source_id: str) -> str | None:
        """The care provider HSA-id a source holds data for, if configured."""
        for source in self.aggregator.sources:
            if source.id == source_id:
                return source.config.care_provider_hsa_id
        return None

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        """Check the configuration, prepare the schema and build every collaborator."""
        check_kinds(settings.sources)
        url = settings.effective_database_url
        if settings.should_auto_migrate:
            upgrade(url)
        else:
            check_current(url)
        db = Database(url)
        clients: list[httpx.AsyncClient] = []
        sources: list[Source] = []
        policy = resilience_policy(settings)
        for config in settings.sources:
            client = httpx.AsyncClient(
                auth=build_auth(config),
                timeout=httpx.Timeout(
                    config.timeout, connect=min(config.timeout, settings.connect_timeout)
                ),
                # More connections than concurrent calls would never be used.
                limits=httpx.Limits(
                    max_connections=settings.source_max_concurrency,
                    max_keepalive_connections=min(settings.source_max_concurrency, 20),
                ),
                follow_redirects=False,
            )
            clients.append(client)
            adapter = ResilientAdapter(build_adapter(config, client), policy)
            sources.append(Source(config, adapter))
        jwks_client = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        clients.append(jwks_client)
        register_client = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        clients.append(register_client)
        log.info("gateway ready with %d source(s)", len(sources))
        return cls(
            settings=settings,
            db=db,
            persons=PersonIndex(
                db, settings.id_key.get_secret_value(), settings.data_key.get_secret_value()
            ),
            aggregator=Aggregator(sources, settings.request_deadline),
            tokens=TokenVerifier(settings.issuers, jwks_client),
            consents=ConsentStore(db),
            guardians=GuardianRegister(settings.guardian_registers, register_client),
            audit=AuditLog(db),
            engagement=EngagementIndex(
                db, timedelta(seconds=settings.engagement_full_check_seconds)
            ),
            paging=PageCursorCodec(b"paging:" + settings.id_key.get_secret_value().encode()),
            clients=clients,
        )

    async def aclose(self) -> None:
        for source in self.aggregator.sources:
            await source.adapter.aclose()
        for client in self.clients:
            await client.aclose()
        await self.db.dispose()


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
