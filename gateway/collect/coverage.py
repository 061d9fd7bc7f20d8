"""Each source's coverage (:mod:`fhir_profiles.coverage`): what it shares and since when,
from its configuration, and learned once from what it says it offers
(:func:`adapters.coverage.offered_types`).

Learning is background work: a process asks each source once after start-up (again,
every ``retry_every`` seconds, only a source it could not ask yet). A request only
looks its sources' coverage up in memory; until a source is learned, its coverage is
its configuration's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

import httpx

from adapters.config import SourceConfig
from adapters.coverage import offered_types
from adapters.errors import SourceError
from fhir_profiles.coverage import SourceCoverage, coverage
from gateway.sources import Source

log = logging.getLogger(__name__)

#: Asks a source what it offers (see :func:`adapters.coverage.offered_types`).
Ask = Callable[[SourceConfig, httpx.AsyncClient], Awaitable[tuple[str, frozenset[str]] | None]]


def _from(config: SourceConfig, learned: tuple[str, frozenset[str]] | None) -> SourceCoverage:
    wanted = config.coverage
    return coverage(
        since=wanted.since,
        since_by_category=wanted.since_by_category,
        withheld=wanted.withholds,
        offered_types=None if learned is None else learned[1],
        learned_from=None if learned is None else learned[0],
    )


class Coverages:
    """The coverage of every source of one process, in memory."""

    def __init__(
        self,
        sources: Sequence[Source],
        clients: Mapping[str, httpx.AsyncClient],
        *,
        ask: Ask = offered_types,
        timeout: float = 10.0,
    ) -> None:
        self._configs = {s.id: s.config for s in sources}
        self._clients = clients
        self._ask = ask
        self._timeout = timeout
        self._known = {s.id: _from(s.config, None) for s in sources}
        self._unlearned = set(self._configs)

    def of(self, source_id: str) -> SourceCoverage | None:
        """What ``source_id`` shares, as far as known now (None: no such source)."""
        return self._known.get(source_id)

    @property
    def learned(self) -> bool:
        """Every source has been asked what it offers."""
        return not self._unlearned

    async def learn(self) -> None:
        """Ask each source not yet learned what it offers, all at once; a source that
        cannot be asked now keeps its configured coverage and is asked next time."""
        pending = sorted(self._unlearned)
        await asyncio.gather(*(self._learn(source_id) for source_id in pending))

    async def _learn(self, source_id: str) -> None:
        config, client = self._configs[source_id], self._clients.get(source_id)
        if client is None:
            self._unlearned.discard(source_id)
            return
        try:
            async with asyncio.timeout(self._timeout):
                learned = await self._ask(config, client)
        except (SourceError, TimeoutError) as exc:
            log.info("coverage of %s not learned yet: %s", source_id, type(exc).__name__)
            return
        self._known[source_id] = _from(config, learned)
        self._unlearned.discard(source_id)

    async def run(self, pause: Callable[[float], Awaitable[bool]], retry_every: float) -> None:
        """Learn now, then again every ``retry_every`` seconds while a source is not
        learned; ``pause`` waits and says whether the process is stopping."""
        while True:
            await self.learn()
            if self.learned or await pause(retry_every):
                return
