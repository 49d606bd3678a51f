"""The highest event id a triggered campaign's occurrence saw: trigger events that reach the store
late are taken by the next occurrence instead of being missed.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("occurrences") as batch:
        batch.add_column(sa.Column("watermark", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("occurrences") as batch:
        batch.drop_column("watermark")
