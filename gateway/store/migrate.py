"""Schema migrations with Alembic, driven from code (``samlad migrate``, start-up checks)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.store.db import sync_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class SchemaNotCurrent(RuntimeError):
    """The database schema is not at the newest revision."""


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    """Bring the schema to the newest revision."""
    url = sync_url(database_url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), "head")


def check_current(database_url: str) -> None:
    """Raise :class:`SchemaNotCurrent` unless the schema is at the newest revision."""
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise SchemaNotCurrent("the database cannot be reached") from exc
    finally:
        engine.dispose()
    if current != head:
        raise SchemaNotCurrent(
            f"database schema is at {current or 'nothing'}, expected {head}: run `samlad migrate`"
        )
