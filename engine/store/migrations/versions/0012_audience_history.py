"""Audience history: each occurrence's funnel (matched, each exclusion, targeted, per variant, per
locale, per channel) and its planning time, recorded when it is planned, for `nudge report` and the
dashboard (nothing recorded it before: an audience's growth could not be seen).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    op.create_table(
        "audience_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("occurrence", sa.DateTime, nullable=False),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        sa.Column("matched", sa.Integer, nullable=False),
        sa.Column("excluded", json, nullable=False),
        sa.Column("targeted", sa.Integer, nullable=False),
        sa.Column("held_out", sa.Integer, nullable=False, server_default="0"),
        sa.Column("variants", json),
        sa.Column("locales", json),
        sa.Column("channels", json),
        sa.Column("planning_seconds", sa.Float),
        sa.UniqueConstraint("campaign", "occurrence", name="uq_audience_history_occurrence"),
    )


def downgrade() -> None:
    op.drop_table("audience_history")
