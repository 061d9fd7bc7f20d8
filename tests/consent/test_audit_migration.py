"""Migrations 0003 and 0007: the tables they create are the ones the models describe,
and they reverse."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

import store.jobs  # noqa: F401 - every table on SQLModel.metadata
from consent.checkpoints import CHECKPOINT_TABLE
from consent.entries import AUDIT_TABLE
from store.db import sync_url
from store.migrate import alembic_config, upgrade


def test_migration_matches_the_model(database_url: str) -> None:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()
    assert [d for d in diffs if AUDIT_TABLE.name in repr(d)] == []
    assert [d for d in diffs if CHECKPOINT_TABLE.name in repr(d)] == []


def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'samlad.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "0002")
    engine = create_engine(sync_url(url))
    try:
        assert AUDIT_TABLE.name not in inspect(engine).get_table_names()
        upgrade(url)
        assert AUDIT_TABLE.name in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_checkpoints_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'samlad.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "0006")
    engine = create_engine(sync_url(url))
    try:
        tables = inspect(engine).get_table_names()
        assert CHECKPOINT_TABLE.name not in tables
        assert AUDIT_TABLE.name in tables
        upgrade(url)
        assert CHECKPOINT_TABLE.name in inspect(engine).get_table_names()
    finally:
        engine.dispose()
