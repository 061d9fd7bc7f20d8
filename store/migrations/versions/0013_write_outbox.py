"""Writes to the systems that own them: the outbox the write worker delivers from.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _moment(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "write_request",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("asked_by", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("care_unit_hsa_id", sa.String(64), nullable=False),
        sa.Column("interaction", sa.String(16), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("target_id", sa.String(200), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _moment("due_at"),
        _moment("recorded_at"),
        _moment("done_at", nullable=True),
        sa.Column("answer_status", sa.Integer(), nullable=True),
        sa.Column("result_id", sa.String(200), nullable=True),
        sa.Column("error", sa.String(200), nullable=True),
    )
    op.create_index(
        "ix_write_request_idempotency_key", "write_request", ["idempotency_key"], unique=True
    )
    op.create_index("ix_write_request_patient_id", "write_request", ["patient_id"])
    op.create_index("ix_write_request_status", "write_request", ["status"])


def downgrade() -> None:
    op.drop_index("ix_write_request_status", table_name="write_request")
    op.drop_index("ix_write_request_patient_id", table_name="write_request")
    op.drop_index("ix_write_request_idempotency_key", table_name="write_request")
    op.drop_table("write_request")
