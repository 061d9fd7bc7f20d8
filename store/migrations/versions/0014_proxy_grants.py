"""A consent may be a proxy grant (fullmakt): what it covers, and whether the proxy also
manages the person's choices.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consent_record") as batch:
        batch.add_column(sa.Column("covers", sa.String(1024), nullable=True))
        batch.add_column(
            sa.Column("manages", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    # Proxy grants are withdrawn first: the earlier schema would read one as a consent
    # to an organisation whose HSA-id is the proxy's opaque id (which grants nobody).
    op.execute(
        "UPDATE consent_record SET withdrawn_at = recorded_at "
        "WHERE grantee_type = 'proxy' AND withdrawn_at IS NULL"
    )
    with op.batch_alter_table("consent_record") as batch:
        batch.drop_column("manages")
        batch.drop_column("covers")
