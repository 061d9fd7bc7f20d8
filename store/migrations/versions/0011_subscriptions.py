"""Topic-based subscriptions: the subscriptions, the outbox of changes the cache learns
of, and the deliveries still to send.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _moment(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "subscription",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("care_provider_hsa_id", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("endpoint", sa.String(2000), nullable=False),
        sa.Column("payload", sa.String(16), nullable=False),
        sa.Column("headers", sa.LargeBinary(), nullable=True),
        sa.Column("heartbeat_seconds", sa.Integer(), nullable=True),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.String(200), nullable=True),
        _moment("created_at"),
        _moment("sent_at", nullable=True),
    )
    op.create_index("ix_subscription_client_id", "subscription", ["client_id"])
    op.create_index("ix_subscription_patient_id", "subscription", ["patient_id"])
    op.create_table(
        "subscription_event",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(200), nullable=False),
        _moment("recorded_at"),
    )
    op.create_table(
        "subscription_delivery",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("subscription_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("resource_type", sa.String(64), nullable=True),
        sa.Column("resource_id", sa.String(200), nullable=True),
        sa.Column("event_number", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _moment("due_at"),
        _moment("recorded_at"),
    )
    op.create_index(
        "ix_subscription_delivery_subscription_id", "subscription_delivery", ["subscription_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_subscription_delivery_subscription_id", table_name="subscription_delivery")
    op.drop_table("subscription_delivery")
    op.drop_table("subscription_event")
    op.drop_index("ix_subscription_patient_id", table_name="subscription")
    op.drop_index("ix_subscription_client_id", table_name="subscription")
    op.drop_table("subscription")
