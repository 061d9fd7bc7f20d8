"""Who set a person's notice settings: a guardian or a proxy (their identifier sealed),
or nobody but the person (null), so that notices stop when that standing ends.

Revision ID: notice_setter
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "notice_setter"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notice_setting", sa.Column("setter", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("notice_setting", "setter")
