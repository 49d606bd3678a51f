"""The exclusive group a delivery belonged to when it was planned (`exclusive: GROUP`): later
campaigns of the group look for it in the ledger, whatever became of the rule since.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("exclusive_group", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("exclusive_group")
