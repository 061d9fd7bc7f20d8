"""Database engines and sessions, built per app from the configured URL (never at import)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.errors import ServiceUnavailable

#: Connections each process keeps open to PostgreSQL.
DEFAULT_POOL_SIZE = 20

#: The dialect-specific INSERT both backends' upserts are built from.
Insert = postgresql.Insert | sqlite.Insert

log = logging.getLogger(__name__)


def async_url(url: str) -> str:
    """The async driver form of a user-facing database URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database backend {backend!r} (use sqlite or postgresql)")


def sync_url(url: str) -> str:
    """The sync driver form, for Alembic."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return parsed.set(drivername="sqlite").render_as_string(hide_password=False)


def unavailable(exc: SQLAlchemyError) -> ServiceUnavailable:
    """The 503 a database error becomes, logged by its type only: the statement's
    parameters may hold personal data."""
    log.error("database error: %s", type(exc).__name__)
    return ServiceUnavailable("the data store is unavailable")


class Database:
    """One engine and a session factory; sessions translate database errors to 503."""

    def __init__(self, url: str, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {"pool_pre_ping": True}
        if parsed.get_backend_name() == "postgresql":
            # Enough kept-open connections for a busy worker: an overflow connection is
            # closed after use, and opening one costs more than the query it serves.
            options |= {"pool_size": pool_size, "max_overflow": pool_size // 2}
        self.engine: AsyncEngine = create_async_engine(async_url(url), **options)
        self.dialect = parsed.get_backend_name()
        # Reads of single statements need no transaction: on PostgreSQL, in autocommit,
        # no BEGIN before the statement and no ROLLBACK when the connection is given back
        # (two round trips of three). SQLite's driver opens none for reads anyway, and
        # switching would cost a PRAGMA each way.
        self._reads = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql"
            else self.engine
        )
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _write_ahead_log)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        try:
            async with self._sessions() as session:
                yield session
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A plain connection for Core reads (each statement sees what is committed when
        it runs): for hot reads, a fraction of a session's CPU and round trips. Not for
        writes: use :meth:`session`."""
        try:
            async with self._reads.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection that sees one state of the database until it closes,
        whatever is committed meanwhile: for a read that goes over the same rows twice.

        PostgreSQL: a REPEATABLE READ transaction. SQLite: an explicit deferred
        transaction (the driver opens none for reads of its own); with the write-ahead
        log, it does not hold up writers.
        """
        async with self.connect() as conn:
            if self.dialect == "postgresql":
                await conn.execution_options(isolation_level="REPEATABLE READ")
                await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                yield conn
                return
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                await conn.exec_driver_sql("ROLLBACK")

    def upsert(self, table: Table) -> Insert:
        """An INSERT that can take ``on_conflict_do_update``/``_do_nothing`` (both backends)."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _write_ahead_log(dbapi_connection: Any, _record: Any) -> None:
    """SQLite in write-ahead-log mode: readers and the one writer do not block each other
    (a long streamed read would otherwise hold up every write). Kept by the file, so set
    only when the file is not in it yet: switching takes the database's lock, and a new
    connection asking for it while writers are busy could time out."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode")
    (mode,) = cursor.fetchone()
    if str(mode).lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
        (mode,) = cursor.fetchone()
    cursor.close()
    if str(mode).lower() not in ("wal", "memory"):
        # E.g. on a network file system: a streamed read then holds up every writer.
        log.warning("SQLite could not use its write-ahead log (journal mode %s)", mode)
