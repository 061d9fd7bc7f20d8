"""Cache chunks are compressed before encryption: chunks of the earlier format are
removed (they would not decrypt), so every source is fetched again once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM record_cache")
    op.execute("DELETE FROM record_cache_sync")


def downgrade() -> None:
    # The earlier format cannot read these chunks either.
    op.execute("DELETE FROM record_cache")
    op.execute("DELETE FROM record_cache_sync")
