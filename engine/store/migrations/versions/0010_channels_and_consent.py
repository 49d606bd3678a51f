"""Channels and consent: the ledger row gains its channel (one row per campaign, customer,
occurrence and channel) and the phone it went to; customers gain SMS consent and the double
opt-in confirmation; topics get a subscriptions table; every change of consent an append-only log.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Before 0010 every message was an email.
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("channel", sa.String(16), nullable=False, server_default="email"))
        batch.add_column(sa.Column("phone", sa.String(64)))
        batch.drop_constraint("uq_deliveries_once", type_="unique")
        batch.create_unique_constraint("uq_deliveries_once", ["campaign", "customer_id", "occurrence", "channel"])
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("sms_opt_in", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("sms_unsubscribed_at", sa.DateTime))
        batch.add_column(sa.Column("email_confirmed_at", sa.DateTime))
    op.create_index("ix_customers_phone", "customers", ["phone"])
    op.create_table(
        "subscriptions",
        sa.Column("customer_id", sa.String(255), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("subscribed", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "topic", name="pk_subscriptions"),
    )
    op.create_table(
        "consent_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("channel", sa.String(16)),
        sa.Column("topic", sa.String(64)),
        sa.Column("change", sa.String(32), nullable=False),
        sa.Column("old_value", sa.String(64)),
        sa.Column("new_value", sa.String(64)),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("address", sa.String(320)),
    )
    op.create_index("ix_consent_log_customer", "consent_log", ["customer_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_consent_log_customer", "consent_log")
    op.drop_table("consent_log")
    op.drop_table("subscriptions")
    op.drop_index("ix_customers_phone", "customers")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("email_confirmed_at")
        batch.drop_column("sms_unsubscribed_at")
        batch.drop_column("sms_opt_in")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_once", type_="unique")
        batch.create_unique_constraint("uq_deliveries_once", ["campaign", "customer_id", "occurrence"])
        batch.drop_column("phone")
        batch.drop_column("channel")
