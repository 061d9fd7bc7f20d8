"""Schema migrations with Alembic, driven from code (``samlad migrate``, start-up checks).

Alembic (with Mako) adds megabytes to every worker's memory, so it is imported only when a
migration has to run. Every start-up on a current schema reads the revision with plain
SQLAlchemy and compares it with :data:`HEAD_REVISION`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, column, create_engine, inspect, select, table
from sqlalchemy.exc import SQLAlchemyError

from store.db import sync_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

#: The newest revision in store/migrations/versions; a test holds it equal to Alembic's head.
HEAD_REVISION = "0019"

#: Where Alembic records the revision a database is at (its default table and column).
VERSION_TABLE = table("alembic_version", column("version_num"))


class SchemaNotCurrent(RuntimeError):
    """The database schema is not at the newest revision."""


def alembic_config(database_url: str) -> Config:
    """The Alembic configuration for ``database_url``; imports Alembic."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    return config


def current_revisions(database_url: str) -> tuple[str, ...]:
    """The revisions the database records, without Alembic: none when it has no version table.

    Raises :class:`~sqlalchemy.exc.SQLAlchemyError` when the database cannot be read.
    """
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            return revisions_on(connection)
    finally:
        engine.dispose()


def revisions_on(connection: Connection) -> tuple[str, ...]:
    """The revisions recorded in the database of ``connection``: none without a version
    table. (Also run on the gateway's own async engine, by the readiness check.)"""
    if not inspect(connection).has_table(VERSION_TABLE.name):
        return ()
    rows = connection.execute(select(VERSION_TABLE.c.version_num)).scalars()
    return tuple(sorted(str(value) for value in rows))


def is_current(revisions: tuple[str, ...]) -> bool:
    """Exactly the head: a database recording several revisions (branches) is not current."""
    return revisions == (HEAD_REVISION,)


def upgrade(database_url: str) -> None:
    """Bring the schema to the newest revision; Alembic is imported only if one must run."""
    url = sync_url(database_url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if is_current(current_revisions(database_url)):
        return
    from alembic import command

    command.upgrade(alembic_config(database_url), "head")
    if url.startswith("sqlite:///"):
        _write_ahead_log(Path(url.removeprefix("sqlite:///")))


def _write_ahead_log(path: Path) -> None:
    """Put a SQLite file in write-ahead-log mode now, while nothing else uses it: the
    gateway's connections then find it so and need not switch it under load (switching
    takes the database's lock; see :mod:`store.db`)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def check_current(database_url: str) -> None:
    """Raise :class:`SchemaNotCurrent` unless the schema is at the newest revision."""
    try:
        revisions = current_revisions(database_url)
    except SQLAlchemyError as exc:
        raise SchemaNotCurrent("the database cannot be reached") from exc
    if not is_current(revisions):
        current = ", ".join(revisions) or "nothing"
        raise SchemaNotCurrent(
            f"database schema is at {current}, expected {HEAD_REVISION}: run `samlad migrate`"
        )
