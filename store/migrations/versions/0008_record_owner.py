"""The record owner index: whose cached record each resource id is in (for reads by id).

The index is written with the cache chunks, so the cache is emptied: every source is
fetched again once, and each answer then fills the index.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_owner",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("source_id", sa.String(64), primary_key=True),
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("ref", sa.String(32), primary_key=True),
    )
    op.create_index("ix_record_owner_ref", "record_owner", ["ref"])
    op.execute("DELETE FROM record_cache")
    op.execute("DELETE FROM record_cache_sync")


def downgrade() -> None:
    op.drop_index("ix_record_owner_ref", table_name="record_owner")
    op.drop_table("record_owner")
