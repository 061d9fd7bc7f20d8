"""The app factory: builds a FastAPI app from settings (nothing happens at import time)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from gateway import __version__
from gateway.collect.deadline import FinishTimes, RequestClock
from gateway.errors import install_error_handlers
from gateway.http.answered import Answered, NoteAnswers
from gateway.http.capability import CapabilityRegistry
from gateway.http.declare import outcome_schemas
from gateway.http.discovery import build_discovery_router
from gateway.http.export_routes import build_export_file_router
from gateway.http.fhir_routes import build_fhir_router
from gateway.http.headers import SecurityHeaders
from gateway.http.health import build_health_router
from gateway.http.metrics import Metrics, build_metrics_router
from gateway.http.notifications import build_notification_router
from gateway.http.ratelimit import THROTTLED_RESPONSE, RateLimiter, rate_limit
from gateway.http.webapp import build_webapp_router
from gateway.services import Services
from gateway.settings import Settings

access_log = logging.getLogger("samlad.access")

#: What a browser script from an allowed origin may send and read (CORS).
CORS_METHODS = ("GET", "POST", "PUT", "DELETE")
CORS_REQUEST_HEADERS = ("Authorization", "Content-Type", "Accept", "Prefer", "If-None-Match")
CORS_EXPOSED_HEADERS = (
    "ETag",
    "Location",
    "Content-Location",
    "Last-Modified",
    "X-Progress",
    "Retry-After",
    "Expires",
)
#: How long a browser may remember a preflight's answer (seconds).
CORS_MAX_AGE = 600


def log_request(answered: Answered) -> None:
    """The request log: one line per HTTP request, with its route template, status and
    time to the end of the answer (read from :class:`~gateway.http.answered.NoteAnswers`,
    which names the template, never the concrete path or query: they may carry ids)."""
    elapsed_ms = round(answered.seconds * 1000, 1)
    access_log.info(
        "%s %s %d %.1fms",
        answered.method,
        answered.route,
        answered.status,
        elapsed_ms,
        extra={
            "method": answered.method,
            "route": answered.route,
            "status": answered.status,
            "duration_ms": elapsed_ms,
        },
    )


def _finish_times(app: FastAPI) -> FinishTimes | None:
    """The finishing times of ``app``'s collector, once its services have started."""
    services: Services | None = getattr(app.state, "services", None)
    return None if services is None else services.collector.finish_times


#: Young-generation threshold for the garbage collector (CPython's default is 700).
GC_GEN0_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Make the cyclic garbage collector cheap for a JSON-heavy server.

    Parsing one overview allocates about a million small objects, none in reference
    cycles; with CPython's default thresholds the full collections that follow cost more
    than the parsing itself (measured: ``bench/bench_normalise.py``). Objects alive after
    the process's first start-up are frozen out of collection and collections run less
    often. Cycles are still collected, only later.

    The freeze is made once per process (when nothing is frozen yet), after a full
    collection: a frozen cycle is never freed, so freezing at every start would keep each
    gateway a process had started and stopped, with all it held, forever.
    """
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


class GatewayApp(FastAPI):
    """FastAPI with :class:`SecurityHeaders` around the whole middleware stack, Starlette's
    server-error middleware included (``add_middleware`` would put it inside), so that an
    unexpected 500 carries the headers too."""

    def __init__(self, *, hsts_max_age: int, **kwargs: Any) -> None:
        self.hsts_max_age = hsts_max_age
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack(), hsts_max_age=self.hsts_max_age)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, with the OperationOutcome schema every error refers to."""
        made = self.openapi_schema is None
        document = super().openapi()  # made once, then kept
        if made:
            document.setdefault("components", {}).setdefault("schemas", {}).update(
                outcome_schemas()
            )
        return document


def create_app(settings: Settings) -> FastAPI:
    """Build the gateway app for ``settings``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = await Services.start(settings, app.state.metrics)
        app.state.services.start_housekeeping()
        tune_garbage_collector()
        try:
            yield
        finally:
            await app.state.services.aclose()

    app = GatewayApp(
        title="Samlad FHIR gateway",
        version=__version__,
        description="A unified, consent-gated FHIR R4 view of a person's health records.",
        lifespan=lifespan,
        hsts_max_age=settings.hsts_max_age,
        # No /docs or /redoc: their pages load scripts from a CDN (docs/api.md).
        docs_url=None,
        redoc_url=None,
        # No redirect to the path with(out) its slash: it is built from the Host header
        # and re-sends the body (an identity number in a _search form) there. 404 instead.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter.from_settings(settings)
    install_error_handlers(app)

    app.state.metrics = Metrics.from_environment()
    # One place notes each answer; the request log and the metrics read it.
    app.add_middleware(NoteAnswers, readers=[log_request, app.state.metrics.observe_request])
    app.include_router(build_health_router(settings))
    app.include_router(build_metrics_router(settings))
    app.add_middleware(RequestClock, finish_times=lambda: _finish_times(app))

    registry = app.state.capabilities = CapabilityRegistry()
    # Every FHIR route spends the caller's rate budget first (gateway/http/ratelimit.py).
    app.include_router(
        build_fhir_router(registry),
        dependencies=[Depends(rate_limit)],
        responses={429: THROTTLED_RESPONSE},
    )
    app.include_router(
        build_export_file_router(registry),
        dependencies=[Depends(rate_limit)],
        responses={429: THROTTLED_RESPONSE},
    )
    app.include_router(build_notification_router())

    app.include_router(build_discovery_router(settings))
    if settings.dev_authorization_server:
        # Imported only here: a production process never loads the development login
        # pages, nor the simulated people they offer (about 2 MB).
        from gateway.run.authserver.routes import build_authserver_router
        from gateway.run.authserver.server import DevAuthorizationServer

        app.state.authserver = DevAuthorizationServer(settings)
        app.include_router(build_authserver_router(app.state.authserver))
    if settings.web_app:
        app.include_router(build_webapp_router(settings))
    if settings.cors_allowed_origins:
        # Outermost of the app's own middleware: a preflight is answered before routing.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allowed_origins,
            allow_methods=list(CORS_METHODS),
            allow_headers=list(CORS_REQUEST_HEADERS),
            expose_headers=list(CORS_EXPOSED_HEADERS),
            max_age=CORS_MAX_AGE,
        )
    return app
