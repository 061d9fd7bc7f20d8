"""PostgreSQL tells every gateway process of a change to a person's standing as it is
committed: a trigger on each table the standing is read from notifies the channel
``samlad_standing`` with the person's opaque id (never an identity number; empty when
a table is emptied: everyone), so that a process drops what it holds in memory of that
person (``consent.standing_memory``).
SQLite has no such channel: nothing to do there.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

#: The tables of a person's standing, as of this revision.
TABLES = (
    "consent_record",
    "block_record",
    "emergency_access",
    "seal_record",
    "own_resource",
    "notice_setting",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION samlad_standing_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                PERFORM pg_notify('samlad_standing', '');  -- everyone's
            ELSIF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('samlad_standing', OLD.patient_id);
            ELSE
                PERFORM pg_notify('samlad_standing', NEW.patient_id);
                IF TG_OP = 'UPDATE' AND OLD.patient_id IS DISTINCT FROM NEW.patient_id THEN
                    PERFORM pg_notify('samlad_standing', OLD.patient_id);
                END IF;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_standing_changed"
            f" AFTER INSERT OR UPDATE OR DELETE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION samlad_standing_changed()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_standing_emptied AFTER TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION samlad_standing_changed()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_standing_changed ON {table}")
        op.execute(f"DROP TRIGGER {table}_standing_emptied ON {table}")
    op.execute("DROP FUNCTION samlad_standing_changed()")
