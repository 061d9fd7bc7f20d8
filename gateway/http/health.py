"""Liveness and readiness probes: ``/livez`` and ``/readyz``.

Liveness says only that the process answers HTTP (restart it if not). Readiness says
whether it can serve: its services have started, the database answers, and the schema
is at exactly the revision this code was written for (:data:`HEAD_REVISION`): a
database behind it (a migration not yet run) or ahead of it (a newer version migrated
it) takes the process out of the load balancer rather than serving on a schema it does
not know. Not ready is a 503 with an OperationOutcome, from the one error handler.

The probes, and ``/metrics``, are outside the FHIR API: not in the CapabilityStatement,
not rate limited, and not written to the request log (:data:`OPERATIONAL_PATHS`).
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from gateway.errors import ServiceUnavailable
from gateway.settings import Settings
from store.db import async_url
from store.migrate import is_current, revisions_on

log = logging.getLogger(__name__)

#: Paths kept out of the request log and the request metrics: probes and scrapes come
#: every few seconds and say nothing about the gateway's use.
OPERATIONAL_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})

#: Seconds the readiness check waits for the database before calling it unavailable.
READY_TIMEOUT = 2.0


def probe_engine(database_url: str) -> AsyncEngine:
    """An engine for readiness checks alone: a connection of its own per check (no pool),
    so a worker whose pooled connections are all busy serving is not called unready,
    and a check sees the database as a new connection would."""
    return create_async_engine(async_url(database_url), poolclass=NullPool)


async def readiness_problem(engine: AsyncEngine) -> str | None:
    """Why the process is not ready to serve from ``engine``'s database, or None."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            async with engine.connect() as conn:
                revisions = await conn.run_sync(revisions_on)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("not ready: the database cannot be read (%s)", type(exc).__name__)
        return "the database is unavailable"
    if not is_current(revisions):
        log.warning("not ready: the database schema is not at this version's revision")
        return "the database schema is not current"
    return None


def build_health_router(settings: Settings) -> APIRouter:
    """``/livez``, ``/readyz`` and ``/healthz`` (the older name of ``/livez``)."""
    router = APIRouter(include_in_schema=False)
    # Holds no connection between checks: nothing to close when the app stops.
    engine = probe_engine(settings.effective_database_url)

    @router.get("/livez")
    @router.get("/healthz")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> dict[str, str]:
        if getattr(request.app.state, "services", None) is None:
            raise ServiceUnavailable("not ready: the gateway is starting")
        problem = await readiness_problem(engine)
        if problem is not None:
            raise ServiceUnavailable(f"not ready: {problem}")
        return {"status": "ready"}

    return router
