"""The person's seals of their own online access, and their delayed release of new entries.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _moment(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "seal_record",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("hsa_id", sa.String(64), nullable=True),
        _moment("data_start", nullable=True),
        _moment("data_end", nullable=True),
        sa.Column("delay_days", sa.Integer(), nullable=True),
        _moment("recorded_at"),
        _moment("lifted_at", nullable=True),
    )


def downgrade() -> None:
    op.drop_table("seal_record")
