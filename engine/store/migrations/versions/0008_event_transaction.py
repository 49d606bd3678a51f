"""PostgreSQL: each event keeps the transaction that wrote it, and a triggered campaign's occurrence
its snapshot, so an occurrence takes exactly the events it could see: a pk watermark lost the
events of an import that committed after a later-numbered event had been seen.

Both columns are added on SQLite too (one schema), where they stay NULL: SQLite keeps the watermark.
Rows already stored get NULL (no default when the column is added: the table is not rewritten);
they committed before this migration, so every snapshot taken afterwards sees them.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from engine.store.tables import Xact

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("xid", Xact))
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("events", "xid", server_default=sa.text("pg_current_xact_id()"))
    with op.batch_alter_table("occurrences") as batch:
        batch.add_column(sa.Column("snapshot", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("occurrences") as batch:
        batch.drop_column("snapshot")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("xid")
