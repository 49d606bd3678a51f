"""Fitted lifetime-value models, kept with their fit time, data window and log-likelihood.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_fits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(32), nullable=False),
        sa.Column("fitted_at", sa.DateTime, nullable=False),
        sa.Column("data_from", sa.DateTime),
        sa.Column("data_until", sa.DateTime, nullable=False),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("params", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("log_likelihood", sa.Float),
    )
    op.create_index("ix_model_fits_model", "model_fits", ["model", "fitted_at"])


def downgrade() -> None:
    op.drop_table("model_fits")
