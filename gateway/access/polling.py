"""The loop every background worker runs (notices, subscriptions' deliveries, writes): a
round, then a wait for the next, until the process stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from store.db import StoreUnavailable

log = logging.getLogger(__name__)


async def poll(
    once: Callable[[], Awaitable[object]],
    what: str,
    seconds: float,
    stopping: asyncio.Event,
    woken: asyncio.Event | None = None,
) -> None:
    """Run ``once`` every ``seconds`` until ``stopping`` is set; with ``woken``, at once
    when it is set instead. A round that fails is logged (as ``what``) and the next one
    comes as usual: a data store that is down pauses the work, never ends it."""
    wait = stopping if woken is None else woken
    while not stopping.is_set():
        try:
            await once()
        except StoreUnavailable:
            log.warning("%s paused: the data store is unavailable", what)
        except Exception:
            log.exception("%s failed", what)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wait.wait(), seconds)
        if woken is not None:
            woken.clear()
