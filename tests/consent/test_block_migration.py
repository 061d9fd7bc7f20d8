"""Migration 0009: a block says from whom it hides; blocks made before it hide from everyone
else, as they did; on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import column, create_engine, insert, inspect, select, table
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import store.jobs  # noqa: F401 - every table on SQLModel.metadata
from store.db import sync_url
from store.migrate import alembic_config, upgrade
from store.tables import BlockRecord
from tests.conftest import ADMIN_POSTGRES_URL

BLOCKS = BlockRecord.__tablename__


def test_migration_matches_the_model(database_url: str) -> None:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()
    assert [d for d in diffs if BLOCKS in repr(d)] == []


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database of its own, not migrated (a new PostgreSQL database, dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('migration') / 'samlad.db'}"
        return
    name = f"samlad_test_{uuid.uuid4().hex[:12]}"
    admin = make_url(ADMIN_POSTGRES_URL)
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _insert_block(url: str, block_id: str, **more: str) -> None:
    engine = create_engine(sync_url(url))
    columns = {
        "id": block_id,
        "patient_id": "p",
        "blocked_type": "care-unit",
        "blocked_hsa_id": "SE2321009001-UNGM",
        "recorded_at": datetime(2026, 12, 1, tzinfo=UTC),
        **more,
    }
    try:
        with engine.begin() as conn:
            conn.execute(insert(table(BLOCKS, *map(column, columns))).values(**columns))
    finally:
        engine.dispose()


def _audiences(url: str) -> dict[str, str]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            audiences = select(column("id"), column("hidden_from")).select_from(table(BLOCKS))
            rows = conn.execute(audiences).all()
        return {row.id: row.hidden_from for row in rows}
    finally:
        engine.dispose()


def test_earlier_blocks_hide_from_everyone_else_and_guardian_blocks_survive_a_downgrade(
    fresh_url: str,
) -> None:
    command.upgrade(alembic_config(fresh_url), "0008")
    _insert_block(fresh_url, "block-earlier")
    upgrade(fresh_url)
    assert _audiences(fresh_url) == {"block-earlier": "others"}
    _insert_block(fresh_url, "block-guardians", hidden_from="guardians")

    command.downgrade(alembic_config(fresh_url), "0008")
    engine = create_engine(sync_url(fresh_url))
    try:
        columns = {c["name"] for c in inspect(engine).get_columns(BLOCKS)}
        with engine.connect() as conn:
            ids = select(column("id")).select_from(table(BLOCKS))
            kept = set(conn.execute(ids).scalars())
    finally:
        engine.dispose()
    assert "hidden_from" not in columns
    # Kept as blocks from everyone else: more hidden than was asked, never less.
    assert kept == {"block-earlier", "block-guardians"}
    upgrade(fresh_url)
    assert _audiences(fresh_url) == {"block-earlier": "others", "block-guardians": "others"}
