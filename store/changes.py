"""Being told that rows changed, so that what a process holds in memory of them can go:
by this process's own writes (:func:`watch_writes`, at once) and by every process's
(:class:`Listener`, PostgreSQL ``LISTEN``, as soon as they commit)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

#: A connection's mark, while its transaction has written to a watched table.
_WROTE = "samlad.wrote-watched"


class Changes(Protocol):
    """What is told of changes to the watched rows."""

    def writing(self) -> None:
        """A write to them has begun in this process (not yet committed)."""

    def written(self) -> None:
        """A write :meth:`writing` told of has ended: committed or rolled back."""


def watch_writes(engine: AsyncEngine, tables: Collection[str], changes: Changes) -> None:
    """Tell ``changes`` of every write of this process's to ``tables``: when its first
    INSERT, UPDATE or DELETE to one of them has run, and when its connection goes back
    to the pool, after its transaction has committed or rolled back (whichever way it
    was written: Core, a session, an audit log append). A connection the pool drops
    instead (invalidated) ends its write as well."""
    watched = frozenset(tables)

    def executed(conn: Any, statement: Any, *_args: Any) -> None:
        if not getattr(statement, "is_dml", False) or statement.table.name not in watched:
            return
        if not conn.info.get(_WROTE):
            conn.info[_WROTE] = True
            changes.writing()

    def ended(_dbapi_connection: Any, record: Any, *_args: Any) -> None:
        if record is not None and record.info.pop(_WROTE, False):
            changes.written()

    sync = engine.sync_engine
    event.listen(sync, "after_execute", executed)
    event.listen(sync, "checkin", ended)
    event.listen(sync, "invalidate", ended)


def libpq_url(url: str) -> str:
    """A PostgreSQL URL (any driver form) as libpq takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """``LISTEN`` on one PostgreSQL channel over a connection of its own, for as long as
    :meth:`run` runs: ``on_up`` once listening (again), ``on_note`` with each
    notification's payload, ``on_down`` when the connection is lost (then connected again
    after ``retry`` seconds). What it tells of is committed: PostgreSQL delivers a
    notification when the transaction that sent it commits, to every listener at once."""

    def __init__(
        self,
        url: str,
        channel: str,
        *,
        on_note: Callable[[str], None],
        on_up: Callable[[], None],
        on_down: Callable[[], None],
        retry: float = 1.0,
    ) -> None:
        if not channel.isidentifier():
            raise ValueError(f"not a channel name: {channel!r}")
        self._url = libpq_url(url)
        self._channel = channel
        self._on_note = on_note
        self._on_up = on_up
        self._on_down = on_down
        self._retry = retry
        #: Whether the last attempt got as far as listening.
        self._listened = False

    async def run(self, pause: Callable[[float], Awaitable[bool]]) -> None:
        """Listen until ``pause`` (waiting between attempts) says to stop, or cancelled."""
        # Imported here, where PostgreSQL is in use: the driver is 9 MB of a process's
        # memory that a gateway on SQLite does without (docs/performance.md section 27).
        import psycopg

        told = False  # of failing: once, until listening again
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                if self._listened or not told:
                    log.warning("listening on %s failed: %s", self._channel, type(exc).__name__)
                told = True
            if await pause(self._retry):
                return

    async def _listen(self) -> None:
        import psycopg  # see run

        self._listened = False
        conn = await psycopg.AsyncConnection.connect(
            self._url,
            autocommit=True,
            application_name=f"samlad-{self._channel}",
            # A connection that went silent (no FIN: a network partition) is found out.
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )
        try:
            await conn.execute(f"LISTEN {self._channel}")
            self._listened = True
            self._on_up()
            try:
                async for note in conn.notifies():
                    self._on_note(note.payload)
            finally:
                self._on_down()
        finally:
            await asyncio.shield(conn.close())
