"""Request rate limits: a token bucket per client, spent before a FHIR route does any work.

A client is its principal when its bearer token verifies (an integrator by its client id,
a clinician by their HSA-id, a citizen by their opaque patient id: never an identity
number), and otherwise its address, with a stricter budget of its own: floods and token
guessing are slowed without touching the clients that hold a valid token. A client over
its rate gets 429 with ``Retry-After``, before anything is read or logged as an access.

Each bucket holds up to ``burst`` requests and gains ``rate`` a second. The buckets live in
this process's memory (every worker process counts for itself), one table per kind of
client, each capped and least recently used first out: a bucket idle long enough to be
evicted has usually refilled anyway, and a new one starts full.

The address is the connection's peer, or the client an ``X-Forwarded-For`` names when the
peer is one of the ``trusted_proxies`` (uvicorn resolves it; see
:func:`gateway.run.workers.forwarded_options`): an invented header from anywhere else buys no
fresh budget.

Finding the principal means verifying the token; the verifier remembers the tokens it has
verified until they expire (:class:`gateway.access.tokens.TokenVerifier`), so for a known token
this costs a hash and a few dictionary operations.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request

from consent.principals import Citizen, Clinician, Integrator, Principal
from gateway.access.auth import bearer_token, principal_from_claims
from gateway.access.persons import PersonIndex
from gateway.errors import TooManyRequests, Unauthorized
from gateway.http.declare import fhir_error
from gateway.services import Services
from gateway.settings import Settings

Clock = Callable[[], float]

#: The kind of client of requests without a valid token, limited by address.
ANONYMOUS = "anonymous"
#: FHIR routes never limited: a static discovery document with nothing personal in it,
#: which a throttled client may need to find its way back. (The SMART configuration and
#: ``/healthz`` are outside the FHIR router and never limited either.)
UNLIMITED_ROUTES = frozenset({"/fhir/metadata"})

#: The 429 answer as the OpenAPI document describes it.
THROTTLED_RESPONSE: dict[str, Any] = fhir_error(
    "throttled: over the client's request rate; Retry-After says when to retry",
    headers={
        "Retry-After": {
            "description": "seconds to wait before the next request",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
)


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class BucketTable:
    """The token buckets of one kind of client: at most ``capacity``, least recently used out."""

    def __init__(self, rate: float, burst: int, capacity: int, clock: Clock) -> None:
        if rate <= 0 or burst < 1 or capacity < 1:
            raise ValueError("a bucket table needs a positive rate, burst and capacity")
        self.rate = rate
        self.burst = float(burst)
        self._capacity = capacity
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets

    def take(self, key: str) -> float:
        """Spend one request of ``key``: 0.0 if it had one, else the seconds until it has."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
            if len(self._buckets) > self._capacity:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


def principal_key(principal: Principal, persons: PersonIndex) -> str:
    """A stable key for the principal that names no person: never an identity number."""
    match principal:
        case Citizen(person=person):
            return persons.id_for(person)
        case Clinician(hsa_id=hsa_id):
            return hsa_id
        case Integrator(client_id=client_id):
            return client_id


def address_key(request: Request) -> str:
    """The caller's address; an IPv6 one by its /64, the block one host usually holds."""
    host = request.client.host if request.client else "unknown"
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


class RateLimiter:
    """The buckets of one process, by kind of client (``citizen``, ..., ``anonymous``).

    ``limits`` maps a kind to its (rate per second, burst); a kind with rate 0, or not
    named, is unlimited.
    """

    def __init__(
        self,
        limits: Mapping[str, tuple[float, int]],
        *,
        capacity: int,
        clock: Clock = time.monotonic,
    ) -> None:
        self._tables = {
            kind: BucketTable(rate, burst, capacity, clock)
            for kind, (rate, burst) in limits.items()
            if rate > 0
        }

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = time.monotonic) -> RateLimiter:
        s = settings
        limits = {
            "citizen": (s.rate_limit_citizen_per_second, s.rate_limit_citizen_burst),
            "clinician": (s.rate_limit_clinician_per_second, s.rate_limit_clinician_burst),
            "integrator": (s.rate_limit_integrator_per_second, s.rate_limit_integrator_burst),
            ANONYMOUS: (s.rate_limit_anonymous_per_second, s.rate_limit_anonymous_burst),
        }
        return cls(
            limits if s.rate_limit_enabled else {}, capacity=s.rate_limit_max_clients, clock=clock
        )

    def table(self, kind: str) -> BucketTable | None:
        """The buckets of one kind of client; None if it is unlimited."""
        return self._tables.get(kind)

    async def check(self, request: Request) -> None:
        """Spend one request of the caller's budget, or raise :class:`TooManyRequests`."""
        if not self._tables or getattr(request.scope.get("route"), "path", None) in (
            UNLIMITED_ROUTES
        ):
            return
        kind, key = await self._client(request)
        table = self._tables.get(kind)
        if table is not None:
            wait = table.take(key)
            if wait:
                raise TooManyRequests(wait)

    async def _client(self, request: Request) -> tuple[str, str]:
        """The caller's kind and key: its principal if the token verifies, else its address.

        The verifier remembers tokens it has verified, so a known token costs a hash.
        """
        try:
            token = bearer_token(request)
        except Unauthorized:
            return ANONYMOUS, address_key(request)
        services: Services = request.app.state.services
        try:
            principal = principal_from_claims(await services.tokens.verify(token))
        except Unauthorized:
            return ANONYMOUS, address_key(request)
        return principal.kind, principal_key(principal, services.persons)


async def rate_limit(request: Request) -> None:
    """FastAPI dependency of every FHIR route: one request of the caller's budget, or 429."""
    limiter: RateLimiter = request.app.state.rate_limiter
    await limiter.check(request)
