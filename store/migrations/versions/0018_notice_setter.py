"""Who set a person's notice settings: a guardian or a proxy (their identifier sealed),
or nobody but the person (null), so that notices stop when that standing ends.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notice_setting", sa.Column("setter", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("notice_setting", "setter")
