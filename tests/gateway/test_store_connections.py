"""Pooled PostgreSQL connections that the server closed (a restart, an idle timeout): a
connection idle for a while is pinged and replaced before use; one used recently is
trusted, and if it turns out dead the request fails once (a 503) and the whole pool
reconnects. Each test closes only its own connections (pg_terminate_backend)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from store.db import Database, StoreUnavailable

pytestmark = pytest.mark.anyio


async def _backend(db: Database) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _backends_at_once(db: Database, count: int) -> set[int]:
    """The server processes of ``count`` pooled connections, all open at the same time."""
    opened = asyncio.Event()
    pids: list[int] = []

    async def hold() -> None:
        async with db.connect() as conn:
            pids.append(int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()))
            if len(pids) == count:
                opened.set()
            await opened.wait()

    await asyncio.gather(*(hold() for _ in range(count)))
    return set(pids)


def _terminate(url: str, pids: set[int]) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_idle_connection_closed_by_the_server_is_replaced_unseen(
    postgres_url: str,
) -> None:
    db = Database(postgres_url, pool_size=2, idle_ping_seconds=0)
    try:
        first = await _backend(db)
        _terminate(postgres_url, {first})
        second = await _backend(db)  # no error: the ping found it dead
        assert second != first
    finally:
        await db.dispose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_recently_used_connections_are_trusted_and_one_failure_renews_the_pool(
    postgres_url: str,
) -> None:
    db = Database(postgres_url, pool_size=3, idle_ping_seconds=3600)
    try:
        pids = await _backends_at_once(db, 3)
        assert len(pids) == 3
        _terminate(postgres_url, pids)
        # Not pinged (used a moment ago): the dead connection fails its statement.
        with pytest.raises(StoreUnavailable):
            await _backend(db)
        # The failure invalidated the pool: every later checkout gets a new connection.
        after = await _backends_at_once(db, 3)
        assert not after & pids
    finally:
        await db.dispose()
