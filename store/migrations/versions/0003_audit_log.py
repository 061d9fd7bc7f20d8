"""Access log (loggutdrag): append-only, hash-chained audit entries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Triggers reject UPDATE and DELETE on ``audit_entry`` on both databases. A PostgreSQL
superuser (or the table owner) can still get around them, by ``ALTER TABLE audit_entry
DISABLE TRIGGER …``, ``SET session_replication_role = replica`` or ``TRUNCATE`` (row
triggers do not fire for it); on SQLite anyone who can write the file can drop the
triggers. What such a bypass changes, the hash chain exposes (``samlad audit verify``).
In production run the gateway as a role that is granted only SELECT and INSERT on
``audit_entry`` and does not own it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE FUNCTION audit_entry_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_entry is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
_PG_TRIGGER = """
CREATE TRIGGER audit_entry_append_only
BEFORE UPDATE OR DELETE ON audit_entry
FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()
"""
_SQLITE_TRIGGERS = [
    f"""
CREATE TRIGGER audit_entry_no_{op_name.lower()}
BEFORE {op_name} ON audit_entry
BEGIN
    SELECT RAISE(ABORT, 'audit_entry is append-only: {op_name} refused');
END
"""
    for op_name in ("UPDATE", "DELETE")
]


def upgrade() -> None:
    op.create_table(
        "audit_entry",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("actor_care_unit_hsa_id", sa.String(64), nullable=True),
        sa.Column("actor_care_provider_hsa_id", sa.String(64), nullable=True),
        sa.Column("on_behalf_of", sa.String(64), nullable=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("resource_types", sa.JSON(), nullable=False),
        sa.Column("returned_count", sa.Integer(), nullable=False),
        sa.Column("returned", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("emergency_reason", sa.String(1000), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("outcome_reason", sa.String(64), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.CheckConstraint("seq >= 1", name="ck_audit_entry_seq_positive"),
        sa.CheckConstraint(
            "actor_kind IN ('citizen', 'clinician', 'integrator', 'guardian')",
            name="ck_audit_entry_actor_kind",
        ),
        sa.CheckConstraint(
            "outcome IN ('allowed', 'denied', 'error')", name="ck_audit_entry_outcome"
        ),
    )
    op.create_index("ix_audit_entry_patient_seq", "audit_entry", ["patient_id", "seq"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry")
        op.execute("DROP FUNCTION IF EXISTS audit_entry_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
    op.drop_index("ix_audit_entry_patient_seq", table_name="audit_entry")
    op.drop_table("audit_entry")
