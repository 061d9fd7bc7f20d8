"""Consent, blocking and emergency access records.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _moment(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "consent_record",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
        sa.Column("grantee_type", sa.String(32), nullable=False),
        sa.Column("grantee_hsa_id", sa.String(64), nullable=False),
        _moment("period_start"),
        _moment("period_end", nullable=True),
        _moment("recorded_at"),
        _moment("withdrawn_at", nullable=True),
    )
    op.create_table(
        "block_record",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
        sa.Column("blocked_type", sa.String(32), nullable=False),
        sa.Column("blocked_hsa_id", sa.String(64), nullable=False),
        _moment("recorded_at"),
        _moment("lifted_at", nullable=True),
    )
    op.create_table(
        "emergency_access",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
        sa.Column("clinician_hsa_id", sa.String(64), nullable=False),
        sa.Column("care_unit_hsa_id", sa.String(64), nullable=False),
        sa.Column("care_provider_hsa_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("block_override_reason", sa.String(1000), nullable=True),
        _moment("started_at"),
        _moment("expires_at"),
    )


def downgrade() -> None:
    op.drop_table("emergency_access")
    op.drop_table("block_record")
    op.drop_table("consent_record")
