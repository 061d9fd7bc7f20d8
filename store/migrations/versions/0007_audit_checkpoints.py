"""Signed checkpoints of the access log's chain head, append-only like the log.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Triggers reject UPDATE and DELETE on ``audit_checkpoint`` on both databases, as 0003
does for ``audit_entry`` (and with the same limits: a superuser can get around them).
What removing or changing checkpoints here cannot hide is what the exported copies
(the checkpoint file) still show, and a checkpoint cannot be forged without the key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE FUNCTION audit_checkpoint_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoint is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
_PG_TRIGGER = """
CREATE TRIGGER audit_checkpoint_append_only
BEFORE UPDATE OR DELETE ON audit_checkpoint
FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_append_only()
"""
_SQLITE_TRIGGERS = [
    f"""
CREATE TRIGGER audit_checkpoint_no_{op_name.lower()}
BEFORE {op_name} ON audit_checkpoint
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoint is append-only: {op_name} refused');
END
"""
    for op_name in ("UPDATE", "DELETE")
]


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("prev_seq", sa.BigInteger(), nullable=False),
        sa.Column("entries_digest", sa.String(64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.CheckConstraint("prev_seq >= 0 AND prev_seq < seq", name="ck_audit_checkpoint_order"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoint_append_only ON audit_checkpoint")
        op.execute("DROP FUNCTION IF EXISTS audit_checkpoint_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoint_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoint_no_delete")
    op.drop_table("audit_checkpoint")
