"""Computed customer metrics as of `at`, each family one set-based query over the store.

Every query returns (customer id, value) for every customer, so a metric condition is
``customers.id IN (SELECT id … WHERE value OPERATOR operand)`` like any other leaf. Exact
definitions are in docs/metrics.md; thresholds come from config.yaml `metrics:`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.store.sqljson import NUMBER, TEXT, json_value
from engine.store.tables import customers, events

NUMERIC, LABEL = "numeric", "text"
METRICS: dict[str, str] = {
    "rfm.recency_days": NUMERIC,
    "rfm.frequency": NUMERIC,
    "rfm.monetary": NUMERIC,
    "rfm.r": NUMERIC,
    "rfm.f": NUMERIC,
    "rfm.m": NUMERIC,
    "rfm.score": NUMERIC,
    "rfm.code": NUMERIC,
    "rfm.segment": LABEL,
    "value_tier": LABEL,
    "revenue_share": NUMERIC,
    "clv.historical": NUMERIC,
    "lifecycle": LABEL,
    "churn.frequency_drop": NUMERIC,
    "churn.engagement_drop": NUMERIC,
    "churn.complaints": NUMERIC,
    "favourite_category": LABEL,
    "satisfaction.latest": NUMERIC,
    "satisfaction.avg": NUMERIC,
    "clv.p_alive": NUMERIC,
    "clv.predicted_purchases_12m": NUMERIC,
    "clv.predicted_12m": NUMERIC,
}
# Metrics whose values are a closed set: a value outside it can never match, so it is an error.
VOCABULARIES: dict[str, tuple[str, ...]] = {
    "rfm.segment": (
        "champions",
        "potential_loyalists",
        "new_customers",
        "loyal",
        "need_attention",
        "cant_lose",
        "at_risk",
        "hibernating",
        "lost",
    ),
    "value_tier": ("A", "B", "C"),
    "lifecycle": ("prospect", "new", "repeat", "loyal", "at_risk", "lapsed"),
}
ORDERING = ("gt", "gte", "lt", "lte", "between")
STORED = ("clv.p_alive", "clv.predicted_purchases_12m", "clv.predicted_12m")
ENGAGEMENT = ("email_open", "email_click", "product_view")


def check_metric_name(name: str) -> str | None:
    if name in METRICS:
        return None
    return f"unknown metric {name!r}: use one of {', '.join(METRICS)}"


def _days(later: Any, earlier: ColumnElement, dialect: str) -> ColumnElement:
    if dialect == "postgresql":
        return sa.extract("epoch", later - earlier) / 86400.0
    return sa.func.julianday(later) - sa.func.julianday(earlier)


def _purchases(ctx, settings) -> sa.Subquery:
    at = ctx.at_utc
    amount = json_value(events.c.properties, settings.revenue_property, NUMBER, ctx.dialect)
    recent_start, base_start = at - settings.churn.recent, at - settings.churn.baseline
    return (
        sa.select(
            events.c.customer_id.label("id"),
            sa.func.count().label("n"),
            sa.func.coalesce(sa.func.sum(amount), 0.0).label("total"),
            sa.func.min(events.c.occurred_at).label("first_at"),
            sa.func.max(events.c.occurred_at).label("last_at"),
            sa.func.sum(sa.case((events.c.occurred_at > recent_start, 1), else_=0)).label("n_recent"),
            sa.func.sum(
                sa.case((sa.and_(events.c.occurred_at > base_start, events.c.occurred_at <= recent_start), 1), else_=0)
            ).label("n_base"),
        )
        .where(events.c.type == "purchase", events.c.occurred_at <= at)
        .group_by(events.c.customer_id)
        .subquery("purchases")
    )


def _score(rank: ColumnElement, buyers: ColumnElement, k: int) -> ColumnElement:
    # RANK gives ties the same score; integer arithmetic keeps SQLite and PostgreSQL identical.
    return sa.cast(((rank - 1) * k) / buyers, sa.Integer) + 1


def _rfm(ctx, settings) -> sa.Subquery:
    p = _purchases(ctx, settings)
    k = settings.rfm.scores
    buyers = sa.func.count().over()
    return sa.select(
        p.c.id,
        p.c.n,
        p.c.total,
        p.c.last_at,
        p.c.first_at,
        p.c.n_recent,
        p.c.n_base,
        _score(sa.func.rank().over(order_by=p.c.last_at.asc()), buyers, k).label("r"),
        _score(sa.func.rank().over(order_by=p.c.n.asc()), buyers, k).label("f"),
        _score(sa.func.rank().over(order_by=p.c.total.asc()), buyers, k).label("m"),
        sa.func.sum(p.c.total).over().label("revenue"),
        # Default frame (RANGE … CURRENT ROW) includes ties: equal spenders land in the same tier.
        sa.func.sum(p.c.total).over(order_by=p.c.total.desc()).label("cumulative"),
        # The total of everyone tied with this customer: with it, "ranked before" excludes peers.
        sa.func.sum(p.c.total).over(partition_by=p.c.total).label("peers"),
    ).subquery("rfm")


def _segment(r: ColumnElement, f: ColumnElement, k: int) -> ColumnElement:
    r5 = sa.cast(((r - 1) * 5) / k, sa.Integer) + 1
    f5 = sa.cast(((f - 1) * 5) / k, sa.Integer) + 1
    return sa.case(
        (r.is_(None), sa.null()),
        (sa.and_(r5 >= 4, f5 >= 4), "champions"),
        (sa.and_(r5 >= 4, f5 >= 2), "potential_loyalists"),
        (r5 >= 4, "new_customers"),
        (sa.and_(r5 == 3, f5 >= 4), "loyal"),
        (r5 == 3, "need_attention"),
        (f5 >= 4, "cant_lose"),
        (r5 == 2, "at_risk"),
        (f5 >= 2, "hibernating"),
        else_="lost",
    )


BUYER_FAMILY = (
    "rfm.recency_days",
    "rfm.frequency",
    "rfm.monetary",
    "clv.historical",
    "rfm.r",
    "rfm.f",
    "rfm.m",
    "rfm.score",
    "rfm.code",
    "rfm.segment",
    "revenue_share",
    "value_tier",
    "lifecycle",
    "churn.frequency_drop",
)


def _buyer_metric(name: str, ctx, settings):
    q, values = buyer_family(ctx, settings)
    return q, values[name]


def buyer_family(ctx, settings) -> tuple[sa.Subquery, dict[str, ColumnElement]]:
    """The metrics that share one ranking of purchasers, as expressions over one subquery."""
    q = _rfm(ctx, settings)
    k = settings.rfm.scores
    lifecycle = settings.lifecycle
    at = ctx.at_utc
    tiers = settings.value_tiers
    share_before = (q.c.cumulative - q.c.peers) / sa.func.nullif(q.c.revenue, 0)
    recent_days = settings.churn.recent.total_seconds() / 86400
    base_days = (settings.churn.baseline - settings.churn.recent).total_seconds() / 86400
    ratio = (sa.cast(q.c.n_recent, sa.Float) * base_days) / (sa.cast(q.c.n_base, sa.Float) * recent_days)
    values = {
        "rfm.recency_days": _days(sa.literal(at, sa.DateTime), q.c.last_at, ctx.dialect),
        "rfm.frequency": q.c.n,
        "rfm.monetary": q.c.total,
        "clv.historical": sa.func.coalesce(q.c.total, 0.0),
        "rfm.r": q.c.r,
        "rfm.f": q.c.f,
        "rfm.m": q.c.m,
        "rfm.score": q.c.r + q.c.f + q.c.m,
        "rfm.code": q.c.r * 100 + q.c.f * 10 + q.c.m,
        "rfm.segment": _segment(q.c.r, q.c.f, k),
        "revenue_share": sa.func.coalesce(q.c.total / sa.func.nullif(q.c.revenue, 0), 0.0),
        "value_tier": sa.case(
            (q.c.id.is_(None), "C"), (share_before < tiers.a, "A"), (share_before < tiers.b, "B"), else_="C"
        ),
        "lifecycle": sa.case(
            (q.c.id.is_(None), "prospect"),
            (q.c.last_at <= at - lifecycle.lapsed_after, "lapsed"),
            (q.c.last_at <= at - lifecycle.at_risk_after, "at_risk"),
            (q.c.n >= lifecycle.loyal_orders, "loyal"),
            (q.c.n >= 2, "repeat"),
            else_="new",
        ),
        "churn.frequency_drop": sa.case((q.c.n_base > 0, sa.case((ratio >= 1, 0.0), else_=1 - ratio))),
    }
    return q, values


def _engagement_drop(name: str, ctx, settings):
    at = ctx.at_utc
    recent_start, base_start = at - settings.churn.recent, at - settings.churn.baseline
    counts = (
        sa.select(
            events.c.customer_id.label("id"),
            sa.func.sum(sa.case((events.c.occurred_at > recent_start, 1), else_=0)).label("recent"),
            sa.func.sum(sa.case((events.c.occurred_at <= recent_start, 1), else_=0)).label("base"),
        )
        .where(events.c.type.in_(ENGAGEMENT), events.c.occurred_at > base_start, events.c.occurred_at <= at)
        .group_by(events.c.customer_id)
        .subquery("engagement")
    )
    recent_days = settings.churn.recent.total_seconds() / 86400
    base_days = (settings.churn.baseline - settings.churn.recent).total_seconds() / 86400
    ratio = (sa.cast(counts.c.recent, sa.Float) * base_days) / (sa.cast(counts.c.base, sa.Float) * recent_days)
    return counts, sa.case((counts.c.base > 0, sa.case((ratio >= 1, 0.0), else_=1 - ratio)))


def _complaints(name: str, ctx, settings):
    at = ctx.at_utc
    counts = (
        sa.select(events.c.customer_id.label("id"), sa.func.count().label("n"))
        .where(
            events.c.type == "complaint",
            events.c.occurred_at > at - settings.churn.recent,
            events.c.occurred_at <= at,
        )
        .group_by(events.c.customer_id)
        .subquery("complaints")
    )
    return counts, sa.func.coalesce(counts.c.n, 0)


def _favourite_category(name: str, ctx, settings):
    at = ctx.at_utc
    category = json_value(events.c.properties, "category", TEXT, ctx.dialect)
    tally = (
        sa.select(events.c.customer_id.label("id"), category.label("category"), sa.func.count().label("n"))
        .where(events.c.type == "purchase", events.c.occurred_at <= at, category.is_not(None))
        .group_by(events.c.customer_id, category)
        .subquery("tally")
    )
    text = sa.type_coerce(tally.c.category, sa.String)
    tie_break = text.collate("C") if ctx.dialect == "postgresql" else text
    ranked = sa.select(
        tally.c.id,
        tally.c.category,
        sa.func.row_number().over(partition_by=tally.c.id, order_by=(tally.c.n.desc(), tie_break)).label("rank"),
    ).subquery("ranked")
    top = sa.select(ranked.c.id, ranked.c.category).where(ranked.c.rank == 1).subquery("favourite")
    return top, top.c.category


def _satisfaction(name: str, ctx, settings):
    at = ctx.at_utc
    score = json_value(events.c.properties, "score", NUMBER, ctx.dialect)
    surveys = (
        sa.select(
            events.c.customer_id.label("id"),
            score.label("score"),
            sa.func.row_number()
            .over(partition_by=events.c.customer_id, order_by=(events.c.occurred_at.desc(), events.c.pk.desc()))
            .label("rank"),
            sa.func.avg(score).over(partition_by=events.c.customer_id).label("average"),
        )
        .where(events.c.type == "survey", events.c.occurred_at <= at)
        .subquery("surveys")
    )
    latest = sa.select(surveys.c.id, surveys.c.score, surveys.c.average).where(surveys.c.rank == 1).subquery("latest")
    return latest, latest.c.score if name == "satisfaction.latest" else latest.c.average


# Metrics read straight off the events, one query each: name → (subquery with `id`, value column).
EVENT_METRICS = {
    "churn.engagement_drop": _engagement_drop,
    "churn.complaints": _complaints,
    "favourite_category": _favourite_category,
    "satisfaction.latest": _satisfaction,
    "satisfaction.avg": _satisfaction,
}


def metric_query(name: str, ctx) -> sa.Select:
    """SELECT customers.id, value for every customer: the metric as of ctx.at."""
    from engine.store.tables import customer_metrics

    settings = ctx.metrics
    if name in STORED:
        column = {
            "clv.p_alive": customer_metrics.c.p_alive,
            "clv.predicted_purchases_12m": customer_metrics.c.predicted_purchases_12m,
            "clv.predicted_12m": customer_metrics.c.predicted_value_12m,
        }[name]
        return sa.select(customers.c.id, column.label("value")).select_from(
            customers.outerjoin(customer_metrics, customer_metrics.c.customer_id == customers.c.id)
        )
    if name in EVENT_METRICS:
        source, value = EVENT_METRICS[name](name, ctx, settings)
    else:
        source, value = _buyer_metric(name, ctx, settings)
    return sa.select(customers.c.id, value.label("value")).select_from(
        customers.outerjoin(source, source.c.id == customers.c.id)
    )


def metric_kind(name: str) -> str:
    return METRICS[name]


def customer_row(ctx, customer_id: str) -> sa.Select:
    """Every metric of the purchaser family for one customer, in one query."""
    q, values = buyer_family(ctx, ctx.metrics)
    return (
        sa.select(*(values[name].label(name) for name in BUYER_FAMILY))
        .select_from(customers.outerjoin(q, q.c.id == customers.c.id))
        .where(customers.c.id == customer_id)
    )


__all__ = ["BUYER_FAMILY", "METRICS", "check_metric_name", "customer_row", "metric_kind", "metric_query"]


def label_problem(cond: Any) -> tuple[str, str] | None:
    """(operator, reason) when a condition on a categorical metric cannot mean what it says:
    an ordering operator (it would compare alphabetically) or a value outside its closed set."""
    name, value = cond.operator
    if metric_kind(cond.metric) == LABEL and name in ORDERING:
        allowed = VOCABULARIES.get(cond.metric)
        hint = f"in: [{', '.join(allowed)}]" if allowed else "eq or in"
        return name, (
            f"{name} orders numbers, and {cond.metric} is a category (it would compare alphabetically): use {hint}"
        )
    vocabulary = VOCABULARIES.get(cond.metric)
    values = value if isinstance(value, list) else [value]
    if vocabulary and name in ("eq", "ne", "in", "not_in"):
        unknown = [v for v in values if v not in vocabulary]
        if unknown:
            return name, f"{cond.metric} has no value {unknown[0]!r}: its values are {', '.join(vocabulary)}"
    return None
