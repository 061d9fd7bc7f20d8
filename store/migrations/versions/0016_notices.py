"""Being told: what each person asked to be told of, the outbox of notices and the
messages still to send; and the explicit removal of access-log entries past their
retention (``audit_prune``), which alone lets entries be deleted, and only those up to
the seq it records.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# audit_entry stays append-only, except that rows at or below a recorded prune's
# through_seq may be deleted (by ``samlad audit prune``, in the transaction that records it).
_PG_ENTRY_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND OLD.seq <= (SELECT COALESCE(MAX(through_seq), 0) FROM audit_prune) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_entry is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
_PG_ENTRY_FUNCTION_BEFORE = """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_entry is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
_SQLITE_ENTRY_DELETE = """
CREATE TRIGGER audit_entry_no_delete
BEFORE DELETE ON audit_entry
WHEN OLD.seq > (SELECT COALESCE(MAX(through_seq), 0) FROM audit_prune)
BEGIN
    SELECT RAISE(ABORT, 'audit_entry is append-only: DELETE refused');
END
"""
_SQLITE_ENTRY_DELETE_BEFORE = """
CREATE TRIGGER audit_entry_no_delete
BEFORE DELETE ON audit_entry
BEGIN
    SELECT RAISE(ABORT, 'audit_entry is append-only: DELETE refused');
END
"""
_PG_PRUNE_FUNCTION = """
CREATE FUNCTION audit_prune_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_prune is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
_PG_PRUNE_TRIGGER = """
CREATE TRIGGER audit_prune_append_only
BEFORE UPDATE OR DELETE ON audit_prune
FOR EACH ROW EXECUTE FUNCTION audit_prune_append_only()
"""
_SQLITE_PRUNE_TRIGGERS = [
    f"""
CREATE TRIGGER audit_prune_no_{op_name.lower()}
BEFORE {op_name} ON audit_prune
BEGIN
    SELECT RAISE(ABORT, 'audit_prune is append-only: {op_name} refused');
END
"""
    for op_name in ("UPDATE", "DELETE")
]


def _moment(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "notice_setting",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("email", sa.LargeBinary(), nullable=True),
        sa.Column("webhook", sa.LargeBinary(), nullable=True),
        sa.Column("quiet_start", sa.Integer(), nullable=True),
        sa.Column("quiet_end", sa.Integer(), nullable=True),
        _moment("updated_at"),
    )
    op.create_table(
        "notice",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(200), nullable=False),
        _moment("recorded_at"),
    )
    op.create_index("ux_notice_ref", "notice", ["patient_id", "kind", "ref"], unique=True)
    op.create_table(
        "notice_message",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _moment("due_at"),
        _moment("recorded_at"),
    )
    op.create_table(
        "audit_prune",
        sa.Column("through_seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("through_hash", sa.String(64), nullable=False),
        _moment("cutoff"),
        _moment("pruned_at"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_PRUNE_FUNCTION)
        op.execute(_PG_PRUNE_TRIGGER)
        op.execute(_PG_ENTRY_FUNCTION)
    else:
        for statement in _SQLITE_PRUNE_TRIGGERS:
            op.execute(statement)
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
        op.execute(_SQLITE_ENTRY_DELETE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_ENTRY_FUNCTION_BEFORE)
        op.execute("DROP TRIGGER IF EXISTS audit_prune_append_only ON audit_prune")
        op.execute("DROP FUNCTION IF EXISTS audit_prune_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
        op.execute(_SQLITE_ENTRY_DELETE_BEFORE)
        op.execute("DROP TRIGGER IF EXISTS audit_prune_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_prune_no_delete")
    op.drop_table("audit_prune")
    op.drop_table("notice_message")
    op.drop_index("ux_notice_ref", table_name="notice")
    op.drop_table("notice")
    op.drop_table("notice_setting")
