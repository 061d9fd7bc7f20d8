"""Bulk Data exports: the jobs and their finished NDJSON files.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _moment(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "export_job",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("care_provider_hsa_id", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("group_id", sa.String(64), nullable=True),
        sa.Column("request_url", sa.String(2000), nullable=False),
        sa.Column("types", sa.JSON(), nullable=False),
        _moment("since", nullable=True),
        sa.Column("type_filters", sa.JSON(), nullable=False),
        sa.Column("patients", sa.JSON(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(200), nullable=True),
        _moment("transaction_time"),
        _moment("expires_at"),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        _moment("heartbeat_at", nullable=True),
    )
    op.create_index("ix_export_job_client_id", "export_job", ["client_id"])
    op.create_table(
        "export_file",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(80), primary_key=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("export_file")
    op.drop_index("ix_export_job_client_id", table_name="export_job")
    op.drop_table("export_job")
