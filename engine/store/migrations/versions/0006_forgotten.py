"""Customers erased with `nudge forget`, by the hash of their id.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forgotten",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("forgotten_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("forgotten")
