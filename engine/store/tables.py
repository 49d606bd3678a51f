"""Tables as SQLAlchemy Core metadata. Migrations (alembic) create them; this is what queries use."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator, UserDefinedType

metadata = MetaData()


class _Jsonb(TypeDecorator):
    """PostgreSQL's JSONB, found when a PostgreSQL connection first needs it: named here, it would
    load SQLAlchemy's whole PostgreSQL dialect (every driver's module, ~35 ms) into every command,
    a dry run on SQLite included."""

    impl = JSON
    cache_ok = True
    render_bind_cast = True  # as JSONB's: psycopg gets `%(x)s::JSONB`, the SQL it got before

    def load_dialect_impl(self, dialect):
        from sqlalchemy.dialects.postgresql import JSONB

        return dialect.type_descriptor(JSONB())


# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite; same Python API for both.
Json = JSON().with_variant(_Jsonb(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
Id = BigInteger().with_variant(Integer(), "sqlite")


class XID8(UserDefinedType):
    """PostgreSQL's 64-bit transaction id (no wraparound), as `pg_current_xact_id()` gives it."""

    cache_ok = True

    def get_col_spec(self, **kw) -> str:
        return "xid8"


# The transaction that wrote a row: PostgreSQL fills it (default pg_current_xact_id()); always NULL on SQLite.
Xact = BigInteger().with_variant(XID8(), "postgresql")

customers = Table(
    "customers",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("email", String(320)),
    Column("phone", String(64)),
    Column("first_name", String(255)),
    Column("last_name", String(255)),
    Column("birthday", String(10)),  # as imported: YYYY-MM-DD or --MM-DD
    Column("birth_month", SmallInteger),
    Column("birth_day", SmallInteger),
    Column("country", String(2)),
    Column("region", String(255)),
    Column("city", String(255)),
    Column("locale", String(35)),
    Column("timezone", String(64)),  # NULL: the workspace time zone
    Column("signed_up_at", DateTime),  # naive UTC, like every timestamp in the store
    Column("email_opt_in", Boolean, nullable=False, server_default="0"),
    Column("unsubscribed_at", DateTime),
    Column("sms_opt_in", Boolean, nullable=False, server_default="0"),
    Column("sms_unsubscribed_at", DateTime),
    # consent.double_opt_in: the address counts as opted in only from this instant on.
    Column("email_confirmed_at", DateTime),
    Column("attributes", Json, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_customers_birthday", "birth_month", "birth_day"),
    Index("ix_customers_email", "email"),
    Index("ix_customers_timezone", "timezone"),
    Index("ix_customers_phone", "phone"),
)

events = Table(
    "events",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    # "id:<source id>" or "h:<hash of customer, type, time, properties>": re-imports are no-ops.
    Column("event_key", String(300), nullable=False, unique=True),
    Column("customer_id", String(255), ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(64), nullable=False),
    Column("occurred_at", DateTime, nullable=False),
    Column("properties", Json, nullable=False),
    # PostgreSQL numbers rows when they are written but shows them when they commit, so a pk says
    # nothing about what a reader could see: the writing transaction does (engine/audience/trigger.py).
    # NULL for rows written before revision 0008, all committed before any snapshot that reads it.
    Column("xid", Xact),
    Index("ix_events_customer_type_time", "customer_id", "type", "occurred_at"),
    Index("ix_events_type_time", "type", "occurred_at", "customer_id"),
)

occurrences = Table(
    "occurrences",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign", String(100), nullable=False),
    Column("occurrence", DateTime, nullable=False),
    Column("status", String(16), nullable=False),  # running | done
    Column("claimed_by", String(255), nullable=False),
    Column("claimed_at", DateTime, nullable=False),
    Column("heartbeat_at", DateTime, nullable=False),  # a claim whose heartbeat stops is taken over
    Column("finished_at", DateTime),
    # Triggered campaigns: which events this occurrence could see, fixed when it is first planned.
    # SQLite (one writer at a time: pk order is commit order): the highest event pk.
    Column("watermark", BigInteger),
    # PostgreSQL: the snapshot, as text (pg_current_snapshot()); occurrences before 0008 keep a watermark.
    Column("snapshot", Text),
    UniqueConstraint("campaign", "occurrence", name="uq_occurrences_campaign_occurrence"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign", String(100), nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("occurrence", DateTime, nullable=False),
    # pending → sent | failed | unknown; held_out and deferred are recorded, never contacted (yet).
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("email", String(320)),
    Column("counts_toward_cap", Boolean, nullable=False, server_default="0"),
    Column("not_before", DateTime),  # quiet hours: earliest send instant (UTC)
    Column("actions", String(64)),  # indexes of the actions whose `when` held, fixed at planning
    Column("claim", String(64)),  # token of the worker sending this row
    Column("provider_id", String(255)),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Column("variant", String(32)),  # the A/B variant, decided at planning
    Column("handed_at", DateTime),  # given to the email connector: only then can it be `unknown`
    Column("exclusive_group", String(64)),  # `exclusive: GROUP` of its campaign when planned
    # email | sms | webhook, or "none" for a row of coupons and tasks only (engine/core/channels.py).
    # A campaign with several channels has one row per channel; its coupons and tasks hang off
    # the first row the customer can be reached on.
    Column("channel", String(16), nullable=False, server_default="email"),
    Column("phone", String(64)),  # the E.164 number an SMS row went to
    UniqueConstraint("campaign", "customer_id", "occurrence", "channel", name="uq_deliveries_once"),
    Index("ix_deliveries_customer_time", "customer_id", "occurrence"),
    Index("ix_deliveries_campaign_customer", "campaign", "customer_id", "occurrence"),
    Index("ix_deliveries_status", "status", "campaign", "occurrence"),
)

coupons = Table(
    "coupons",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("delivery_id", Id, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("campaign", String(100), nullable=False),
    Column("percent_off", Float),
    Column("amount_off", Float),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    UniqueConstraint("delivery_id", "name", name="uq_coupons_delivery_name"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("action_index", SmallInteger, nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("campaign", String(100), nullable=False),
    Column("queue", String(100), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text),
    Column("due_at", DateTime),
    Column("status", String(16), nullable=False),  # open | done
    Column("created_at", DateTime, nullable=False),
    Column("done_at", DateTime),
    Column("handoff", String(16), nullable=False, server_default="pending"),  # pending | done | failed (sink)
    Column("handoff_error", Text),
    UniqueConstraint("delivery_id", "action_index", name="uq_tasks_delivery_action"),
    Index("ix_tasks_queue_status", "queue", "status"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("email", String(320), primary_key=True),  # lower-cased address
    Column("reason", String(32), nullable=False),  # unsubscribe | bounce | spamreport | manual ...
    Column("source", String(64)),
    Column("created_at", DateTime, nullable=False),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    # A customer's choice per subscription topic; no row: subscribed (SPEC: missing means subscribed).
    Column("customer_id", String(255), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    Column("topic", String(64), primary_key=True),
    Column("subscribed", Boolean, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

consent_log = Table(
    "consent_log",
    metadata,
    # Append-only: every change of consent with its source, the proof a regulator asks for. Not a
    # foreign key: `nudge forget` keeps the entries with the id and address hashed.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", String(255), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("channel", String(16)),  # email | sms | NULL (a topic applies to every channel)
    Column("topic", String(64)),
    Column("change", String(32), nullable=False),  # engine/core/channels.py ConsentChange
    Column("old_value", String(64)),
    Column("new_value", String(64)),
    Column("source", String(255), nullable=False),  # ConsentSource, with detail: "import customers.csv"
    Column("address", String(320)),  # the address or number concerned, when one is
    Index("ix_consent_log_customer", "customer_id", "at"),
)

products = Table(
    "products",
    metadata,
    # `nudge import products`; events name products by their `product_id` property.
    Column("id", String(255), primary_key=True),
    Column("name", Text),
    Column("category", String(255)),
    Column("price", Float),
    Column("currency", String(3)),
    Column("url", Text),
    Column("image_url", Text),
    Column("in_stock", Boolean, nullable=False, server_default="1"),
    Column("attributes", Json, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_products_category", "category", "in_stock"),
)

audience_history = Table(
    "audience_history",
    metadata,
    # One row per planned occurrence: the funnel as the planner counted it, and how long planning
    # took. A dry run writes nothing, so this is what the daemon and `nudge run` saw.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign", String(100), nullable=False),
    Column("occurrence", DateTime, nullable=False),
    Column("recorded_at", DateTime, nullable=False),
    Column("matched", Integer, nullable=False),
    Column("excluded", Json, nullable=False),  # {no_consent: n, cooldown: n, ...}
    Column("targeted", Integer, nullable=False),
    Column("held_out", Integer, nullable=False, server_default="0"),
    Column("variants", Json),
    Column("locales", Json),
    Column("channels", Json),
    Column("planning_seconds", Float),
    UniqueConstraint("campaign", "occurrence", name="uq_audience_history_occurrence"),
)

forgotten = Table(
    "forgotten",
    metadata,
    # `nudge forget`: the one-way hash of an erased customer's id, so an import that still carries
    # them skips them instead of bringing their data back.
    Column("id_hash", String(64), primary_key=True),
    Column("forgotten_at", DateTime, nullable=False),
)

customer_metrics = Table(
    "customer_metrics",
    metadata,
    # Fitted by `nudge metrics refresh` (BG/NBD + Gamma-Gamma); everything else is computed live.
    Column("customer_id", String(255), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    Column("computed_at", DateTime, nullable=False),
    Column("frequency", Integer, nullable=False),  # repeat purchases
    Column("recency_days", Float, nullable=False),  # first to last purchase
    Column("age_days", Float, nullable=False),  # first purchase to the fit's `at`
    Column("monetary", Float),  # mean value of repeat purchases
    Column("p_alive", Float),
    Column("predicted_purchases_12m", Float),
    Column("predicted_value_12m", Float),
)


model_fits = Table(
    "model_fits",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(32), nullable=False),  # bgnbd | gamma_gamma
    Column("fitted_at", DateTime, nullable=False),  # the `at` of the refresh
    Column("data_from", DateTime),  # the first purchase in the data
    Column("data_until", DateTime, nullable=False),
    Column("customers", Integer, nullable=False),
    Column("params", Json, nullable=False),
    Column("log_likelihood", Float),
    Index("ix_model_fits_model", "model", "fitted_at"),
)
