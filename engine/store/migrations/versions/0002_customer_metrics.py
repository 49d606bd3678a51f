"""Fitted customer metrics (BG/NBD and Gamma-Gamma), refreshed by `nudge metrics refresh`.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_metrics",
        sa.Column("customer_id", sa.String(255), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("computed_at", sa.DateTime, nullable=False),
        sa.Column("frequency", sa.Integer, nullable=False),
        sa.Column("recency_days", sa.Float, nullable=False),
        sa.Column("age_days", sa.Float, nullable=False),
        sa.Column("monetary", sa.Float),
        sa.Column("p_alive", sa.Float),
        sa.Column("predicted_purchases_12m", sa.Float),
        sa.Column("predicted_value_12m", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("customer_metrics")
