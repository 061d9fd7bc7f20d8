"""A block says from whom it hides: everyone else (as before) or the patient's guardians.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("block_record") as batch:
        batch.add_column(
            sa.Column("hidden_from", sa.String(16), nullable=False, server_default="others")
        )


def downgrade() -> None:
    # Guardian blocks are kept: the earlier schema reads them as blocks from everyone
    # else, which still hides the data from the guardians (more than was asked, never less).
    with op.batch_alter_table("block_record") as batch:
        batch.drop_column("hidden_from")
