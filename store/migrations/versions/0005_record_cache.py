"""The cache of normalised data: encrypted chunks and their sync times.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_cache",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("source_id", sa.String(64), primary_key=True),
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("chunk", sa.Integer(), primary_key=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "record_cache_sync",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("source_id", sa.String(64), primary_key=True),
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("full_synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
    )
    op.create_index("ix_record_cache_sync_full_synced_at", "record_cache_sync", ["full_synced_at"])


def downgrade() -> None:
    op.drop_index("ix_record_cache_sync_full_synced_at", "record_cache_sync")
    op.drop_table("record_cache_sync")
    op.drop_table("record_cache")
