"""What a person reports themselves: own measurements and answered forms, sealed.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "own_resource",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("idempotency", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_own_resource_patient_id", "own_resource", ["patient_id"])
    op.create_index("ix_own_resource_idempotency", "own_resource", ["idempotency"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_own_resource_idempotency", table_name="own_resource")
    op.drop_index("ix_own_resource_patient_id", table_name="own_resource")
    op.drop_table("own_resource")
