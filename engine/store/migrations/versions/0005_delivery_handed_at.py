"""When a delivery was handed to the email connector: after a crash, a `sending` row without it
certainly never left and goes back to pending; only one with it can be `unknown`.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("handed_at", sa.DateTime))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("handed_at")
