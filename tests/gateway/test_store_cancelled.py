"""Writes and snapshots whose callers are cancelled, the way an AnyIO task group cancels
(every later step of the caller's cleanup is cancelled again): the write is finished, the
database is left as it should be, and the next write goes through at once."""

from __future__ import annotations

import asyncio
import random

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from store.db import Database

pytestmark = pytest.mark.anyio

ANYIO_BACKEND = pytest.mark.parametrize("anyio_backend", ["asyncio"])


async def _table(db: Database) -> None:
    async def create(conn: AsyncConnection) -> None:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS cancelled_write (n INTEGER)"))
        await conn.execute(text("DELETE FROM cancelled_write"))

    await db.write(create)


async def _count(db: Database) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM cancelled_write"))).scalar_one())


@ANYIO_BACKEND
async def test_a_write_whose_caller_is_cancelled_half_way_is_finished(database_url: str) -> None:
    db = Database(database_url)
    try:
        await _table(db)
        inside = asyncio.Event()

        async def slow(conn: AsyncConnection) -> None:
            await conn.execute(text("INSERT INTO cancelled_write VALUES (1)"))
            inside.set()
            await asyncio.sleep(0.2)
            await conn.execute(text("INSERT INTO cancelled_write VALUES (2)"))

        with anyio.move_on_after(5) as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(db.write, slow)
                await inside.wait()
                group.cancel_scope.cancel()
        assert not scope.cancelled_caught  # the caller was let go at once

        async def one_more(conn: AsyncConnection) -> None:
            await conn.execute(text("INSERT INTO cancelled_write VALUES (3)"))

        with anyio.fail_after(2):  # well inside SQLite's 5 s wait for a held write lock
            await db.write(one_more)
    finally:
        await db.dispose()  # (it waits for the writes of cancelled callers)
    db = Database(database_url)
    try:
        # The cancelled caller's transaction went on to its commit.
        async with db.connect() as conn:
            rows = await conn.execute(text("SELECT n FROM cancelled_write ORDER BY n"))
            assert [n for (n,) in rows] == [1, 2, 3]
    finally:
        await db.dispose()


@ANYIO_BACKEND
async def test_after_writes_and_snapshots_cancelled_at_random_moments_the_next_write_goes_through(
    database_url: str,
) -> None:
    db = Database(database_url)
    rng = random.Random(5)
    try:
        await _table(db)

        async def work(conn: AsyncConnection) -> None:
            for n in range(3):
                await conn.execute(text("INSERT INTO cancelled_write VALUES (:n)"), {"n": n})

        async def write() -> None:
            await db.write(work)

        async def snapshot() -> None:
            async with db.snapshot() as conn:
                await conn.execute(text("SELECT count(*) FROM cancelled_write"))
                await conn.execute(text("SELECT count(*) FROM cancelled_write"))

        for _ in range(60):
            with anyio.move_on_after(rng.uniform(0.0, 0.01)):
                async with anyio.create_task_group() as group:
                    for _ in range(3):
                        group.start_soon(rng.choice([write, snapshot]))
        with anyio.fail_after(3):
            await db.write(work)
        assert await _count(db) % 3 == 0  # whole transactions only
    finally:
        await db.dispose()
