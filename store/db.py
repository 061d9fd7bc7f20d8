"""Database engines and sessions, built per app from the configured URL (never at import)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Table, event, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel.ext.asyncio.session import AsyncSession

#: Connections each process keeps open to PostgreSQL.
DEFAULT_POOL_SIZE = 20

#: A pooled connection unused for this long is asked whether it is alive before it is
#: handed out (a server restart or an idle-connection timeout may have closed it); one
#: used more recently is trusted. A connection found dead on use invalidates the whole
#: pool, so after a restart one statement fails (a 503) and the rest reconnect.
IDLE_PING_SECONDS = 10.0

#: SQLite's page cache per connection, in KiB (its default is 2,000). Each pooled
#: connection keeps its own, which a large record written or read through it fills; the
#: operating system caches the file anyway, and reads and writes measured no slower.
SQLITE_CACHE_KIB = 256

#: The dialect-specific INSERT both backends' upserts are built from.
Insert = postgresql.Insert | sqlite.Insert


def upsert_into(dialect: str, table: Table) -> Insert:
    """:meth:`Database.upsert` for the dialect named ``dialect`` (a connection's
    ``dialect.name``)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


#: SQLSTATEs of a transaction PostgreSQL aborted for colliding with another (deadlock
#: detected, could not serialize access): run again, it normally succeeds.
COLLISIONS = frozenset({"40P01", "40001"})

#: The most seconds :meth:`Database.dispose` waits for writes whose callers are gone.
FINISH_SECONDS = 10.0

T = TypeVar("T")


class StoreUnavailable(Exception):
    """The database could not do what was asked (down, timed out, aborted twice).

    The message is safe to show a client (the gateway answers 503 with it); the cause is
    logged by its type only.
    """

    def __init__(self, message: str = "the data store is unavailable") -> None:
        super().__init__(message)
        self.message = message


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


def unavailable(exc: SQLAlchemyError) -> StoreUnavailable:
    """What a database error becomes (a 503 to clients), logged by its type only: the
    statement's parameters may hold personal data."""
    log.error("database error: %s", type(exc).__name__)
    return StoreUnavailable()


def lock_key(name: str) -> int:
    """The PostgreSQL advisory lock key (a signed 64-bit integer) of a write lock's name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _collided(exc: DBAPIError) -> str | None:
    """The SQLSTATE of ``exc`` if it is a collision with another transaction, else None."""
    state = getattr(exc.orig, "sqlstate", None)
    return state if state in COLLISIONS else None


class Database:
    """One engine and a session factory; every way in translates database errors to 503."""

    def __init__(
        self,
        url: str,
        pool_size: int = DEFAULT_POOL_SIZE,
        idle_ping_seconds: float = IDLE_PING_SECONDS,
    ) -> None:
        self.url = url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {}
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
            event.listen(self.engine.sync_engine, "connect", _small_page_cache)
        else:
            _ping_when_idle(self.engine, idle_ping_seconds)
        #: SQLite has one writer at a time: this process's writes take turns here, so
        #: only other processes' writes count against the driver's busy timeout.
        self._sqlite_writer = asyncio.Lock()
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )
        #: Writes whose callers were cancelled, still finishing (see :meth:`write`).
        self._finishing: set[asyncio.Task[Any]] = set()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """An ORM session. Not retried: writes that two requests may make at once go
        through :meth:`write`."""
        try:
            async with self._sessions() as session:
                yield session
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc

    async def write(
        self,
        work: Callable[[AsyncConnection], Awaitable[T]],
        *,
        lock: str | None = None,
        lock_timeout: float | None = None,
    ) -> T:
        """Run ``work`` in one transaction, commit it and return what it returned: the way
        to write with Core statements.

        ``lock`` names what ``work`` writes (say, one person's data from one source):
        writes of one name run one at a time, in this process and every other, each
        seeing what the one before it committed. PostgreSQL: a transaction-scoped
        advisory lock on the name's :func:`lock_key`, taken before anything else and
        held to commit. SQLite: every write, whatever its name, takes the database's one
        write lock first (``BEGIN IMMEDIATE``), so what it reads is what it writes over;
        this process's writes take turns for it in memory, so only other processes'
        writes count against the driver's busy timeout (5 s). ``lock_timeout``: the most
        seconds to wait for the PostgreSQL lock (else as long as it takes); a write that
        waits longer fails (a 503) with nothing written.

        A transaction the database aborts for colliding with another (a deadlock, a
        serialization failure) is rolled back and ``work`` run once more from the
        start, so it must do nothing outside the transaction that cannot be repeated.
        Any other database error, or a second collision, is a 503; an exception of
        ``work``'s own rolls back and passes through.

        A write once begun is finished whatever becomes of its caller: it runs in a task
        of its own, so a cancelled caller (a deadline, a client gone) is let go at once
        while the transaction commits or rolls back. Cut off half-way, under the
        cancellation of an AnyIO task group that cancels every step of the cleanup too,
        a transaction could leave its connection neither committed nor rolled back, and on
        SQLite then hold the one write lock: every later write failed until a restart.
        """
        return await _to_the_end(self._write(work, lock, lock_timeout), self._finishing)

    async def _write(
        self,
        work: Callable[[AsyncConnection], Awaitable[T]],
        lock: str | None,
        lock_timeout: float | None,
    ) -> T:
        try:
            try:
                return await self._transaction(work, lock, lock_timeout)
            except DBAPIError as exc:
                if (state := _collided(exc)) is None:
                    raise
                log.warning("database write collided with another (%s): run again", state)
            return await self._transaction(work, lock, lock_timeout)
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc

    async def _transaction(
        self,
        work: Callable[[AsyncConnection], Awaitable[T]],
        lock: str | None,
        lock_timeout: float | None,
    ) -> T:
        if self.dialect == "postgresql":
            async with self.engine.connect() as conn, conn.begin():
                if lock is not None and lock_timeout is not None:
                    # The FROM clause runs first, so the timeout governs the wait for the
                    # lock (and this transaction's later ones).
                    await conn.execute(
                        text(
                            "SELECT pg_advisory_xact_lock(:key) FROM"
                            " (SELECT set_config('lock_timeout', :timeout, true)) AS settings"
                        ),
                        {
                            "key": lock_key(lock),
                            "timeout": f"{max(1, round(lock_timeout * 1000))}ms",
                        },
                    )
                elif lock is not None:
                    await conn.execute(select(func.pg_advisory_xact_lock(lock_key(lock))))
                return await work(conn)
        # Its turn first, then a connection: one waiting holds none.
        async with self._sqlite_writer, self.engine.connect() as conn:
            # The driver would begin only at the first change, after any reads.
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                done = await work(conn)
            except BaseException:
                await conn.exec_driver_sql("ROLLBACK")
                raise
            await conn.exec_driver_sql("COMMIT")
            return done

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A plain connection for Core reads (each statement sees what is committed when
        it runs): for hot reads, a fraction of a session's CPU and round trips. Not for
        writes: use :meth:`write`."""
        conn = await self._opened()
        try:
            yield conn
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc
        finally:
            running = asyncio.current_task()
            if running is not None and running.cancelling():
                # Given back even though every step of a cancelled reader's cleanup may be
                # cancelled again (see :meth:`write`), never left to the garbage collector.
                await _to_the_end(self._given_back(conn), self._finishing)
            else:
                await self._given_back(conn)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection that sees one state of the database until it closes,
        whatever is committed meanwhile: for a read that goes over the same rows twice.

        PostgreSQL: a REPEATABLE READ transaction. SQLite: an explicit deferred
        transaction (the driver opens none for reads of its own); with the write-ahead
        log, it does not hold up writers. Ended and given back even when the reader is
        cancelled (see :meth:`write`).
        """
        conn = await self._opened()
        try:
            if self.dialect == "postgresql":
                await conn.execution_options(isolation_level="REPEATABLE READ")
                await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            else:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("BEGIN")
            yield conn
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc
        finally:
            await _to_the_end(
                self._given_back(conn, ended=self.dialect == "sqlite"), self._finishing
            )

    async def _opened(self) -> AsyncConnection:
        """A pooled connection, taken out in a task of its own: a reader cancelled while
        it is being opened or pinged lets go at once, and the connection goes back."""
        try:
            return await _to_the_end(
                self._reads.connect().start(), self._finishing, undo=self._given_back
            )
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc

    async def _given_back(self, conn: AsyncConnection, *, ended: bool = False) -> None:
        """Give ``conn`` back to the pool; ``ended``: roll back its explicit transaction first."""
        try:
            if ended and not conn.invalidated:
                await conn.exec_driver_sql("ROLLBACK")
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc
        finally:
            # An invalidated connection (a statement cancelled half-way) is closed for
            # good by the pool; either way this one is given back.
            await conn.close()

    def upsert(self, table: Table) -> Insert:
        """An INSERT that can take ``on_conflict_do_update``/``_do_nothing`` (both backends)."""
        return upsert_into(self.dialect, table)

    async def dispose(self) -> None:
        """Close every connection, once the writes of cancelled callers have finished."""
        if self._finishing:
            await asyncio.wait(set(self._finishing), timeout=FINISH_SECONDS)
        await self.engine.dispose()


async def _to_the_end(
    step: Awaitable[T],
    running: set[asyncio.Task[Any]],
    undo: Callable[[T], Awaitable[None]] | None = None,
) -> T:
    """Await ``step`` in a task of its own that the caller's cancellation does not reach:
    a cancelled caller is let go at once and ``step`` goes on to its end (held in
    ``running`` meanwhile); then what it made is handed to ``undo``, if given, and
    otherwise dropped."""
    task = asyncio.ensure_future(step)
    running.add(task)
    task.add_done_callback(running.discard)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(functools.partial(_outcome_dropped, running, undo))
        raise


def _outcome_dropped(
    running: set[asyncio.Task[Any]],
    undo: Callable[[Any], Awaitable[None]] | None,
    task: asyncio.Task[Any],
) -> None:
    """What a step nobody waits for any more came to: undone if it can be, and only a
    failure is worth a line."""
    if task.cancelled():
        return
    if (error := task.exception()) is not None:
        log.warning("a database step whose caller was cancelled failed: %s", type(error).__name__)
    elif undo is not None:
        undoing = asyncio.ensure_future(undo(task.result()))
        running.add(undoing)
        undoing.add_done_callback(running.discard)
        undoing.add_done_callback(functools.partial(_outcome_dropped, running, None))


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Check a pooled connection's liveness on checkout only when it has been idle for
    ``idle_seconds``: a ping on every checkout (``pool_pre_ping``) is a round trip for
    each of a warm read's few statements. A connection that fails the ping is replaced
    by the pool before anyone uses it."""
    sync = engine.sync_engine

    def returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("returned_at")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            alive = sync.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the driver's own error: the connection is gone
            raise DisconnectionError("a pooled connection did not answer its ping") from exc
        if not alive:
            raise DisconnectionError("a pooled connection did not answer its ping")

    event.listen(sync, "checkin", returned)
    event.listen(sync, "checkout", checked_out)


def _small_page_cache(dbapi_connection: Any, _record: Any) -> None:
    """A connection's page cache of :data:`SQLITE_CACHE_KIB`."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


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
