"""How each source's connections and concurrency slots are used now (for /metrics)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from adapters.client import pool_state
from gateway.collect.resilience import ResilientAdapter
from gateway.sources import Source


@dataclass(frozen=True, slots=True)
class SourcePool:
    """One source's HTTP connections and concurrency slots at one moment."""

    source_id: str
    connections_in_use: int
    connections_idle: int
    #: Requests waiting for a connection of the pool.
    requests_waiting: int
    slots_in_use: int
    slots: int


def source_pools(
    sources: Sequence[Source], clients: Mapping[str, httpx.AsyncClient]
) -> list[SourcePool]:
    """Every source's pool and slots, in configuration order. ``clients`` maps a source
    id to its HTTP client; a source without one (or with a transport that has no pool)
    reports zero connections."""
    pools = []
    for source in sources:
        client = clients.get(source.id)
        state = pool_state(client) if client is not None else None
        adapter = source.adapter
        resilient = adapter if isinstance(adapter, ResilientAdapter) else None
        pools.append(
            SourcePool(
                source_id=source.id,
                connections_in_use=state.in_use if state else 0,
                connections_idle=state.idle if state else 0,
                requests_waiting=state.waiting if state else 0,
                slots_in_use=resilient.slots_in_use if resilient else 0,
                slots=resilient.policy.max_concurrency if resilient else 0,
            )
        )
    return pools
