"""Initial store: customers, events, occurrences, deliveries, coupons, tasks, suppressions.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("email", sa.String(320)),
        sa.Column("phone", sa.String(64)),
        sa.Column("first_name", sa.String(255)),
        sa.Column("last_name", sa.String(255)),
        sa.Column("birthday", sa.String(10)),
        sa.Column("birth_month", sa.SmallInteger),
        sa.Column("birth_day", sa.SmallInteger),
        sa.Column("country", sa.String(2)),
        sa.Column("region", sa.String(255)),
        sa.Column("city", sa.String(255)),
        sa.Column("locale", sa.String(35)),
        sa.Column("timezone", sa.String(64)),
        sa.Column("signed_up_at", sa.DateTime),
        sa.Column("email_opt_in", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("unsubscribed_at", sa.DateTime),
        sa.Column("attributes", Json, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_customers_birthday", "customers", ["birth_month", "birth_day"])
    op.create_index("ix_customers_email", "customers", ["email"])
    op.create_index("ix_customers_timezone", "customers", ["timezone"])
    op.create_table(
        "events",
        sa.Column("pk", Id, primary_key=True, autoincrement=True),
        sa.Column("event_key", sa.String(300), nullable=False, unique=True),
        sa.Column("customer_id", sa.String(255), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("occurred_at", sa.DateTime, nullable=False),
        sa.Column("properties", Json, nullable=False),
    )
    op.create_index("ix_events_customer_type_time", "events", ["customer_id", "type", "occurred_at"])
    op.create_index("ix_events_type_time", "events", ["type", "occurred_at", "customer_id"])
    op.create_table(
        "occurrences",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("occurrence", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(255), nullable=False),
        sa.Column("claimed_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.UniqueConstraint("campaign", "occurrence", name="uq_occurrences_campaign_occurrence"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("occurrence", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("email", sa.String(320)),
        sa.Column("counts_toward_cap", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("not_before", sa.DateTime),
        sa.Column("actions", sa.String(64)),
        sa.Column("claim", sa.String(64)),
        sa.Column("provider_id", sa.String(255)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("sent_at", sa.DateTime),
        sa.UniqueConstraint("campaign", "customer_id", "occurrence", name="uq_deliveries_once"),
    )
    op.create_index("ix_deliveries_customer_time", "deliveries", ["customer_id", "occurrence"])
    op.create_index("ix_deliveries_campaign_customer", "deliveries", ["campaign", "customer_id", "occurrence"])
    op.create_index("ix_deliveries_status", "deliveries", ["status", "campaign", "occurrence"])
    op.create_table(
        "coupons",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("delivery_id", Id, sa.ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("percent_off", sa.Float),
        sa.Column("amount_off", sa.Float),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("delivery_id", "name", name="uq_coupons_delivery_name"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", Id, sa.ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("action_index", sa.SmallInteger, nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("queue", sa.String(100), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text),
        sa.Column("due_at", sa.DateTime),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("done_at", sa.DateTime),
        sa.Column("handoff", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("handoff_error", sa.Text),
        sa.UniqueConstraint("delivery_id", "action_index", name="uq_tasks_delivery_action"),
    )
    op.create_index("ix_tasks_queue_status", "tasks", ["queue", "status"])
    op.create_table(
        "suppressions",
        sa.Column("email", sa.String(320), primary_key=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("suppressions", "tasks", "coupons", "deliveries", "occurrences", "events", "customers"):
        op.drop_table(table)
