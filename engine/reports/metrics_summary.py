"""Metrics for one customer, and how the whole base is distributed (group-bys in the database)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.audience.compiler import EvalContext
from engine.audience.metrics import BUYER_FAMILY, METRICS, customer_row, metric_query

SUMMARY = ("lifecycle", "rfm.segment", "value_tier")


def _plain(value: Any) -> Any:
    return float(value) if hasattr(value, "__float__") and not isinstance(value, (int, float)) else value


def customer_metrics_of(conn: Connection, ctx: EvalContext, customer_id: str) -> dict[str, Any]:
    """All metrics of one customer: the purchaser family in one query, the others one each."""
    row = conn.execute(customer_row(ctx, customer_id)).one()
    found = {name: _plain(row._mapping[name]) for name in BUYER_FAMILY}
    for name in METRICS:
        if name not in found:
            query = metric_query(name, ctx).subquery("metric")
            found[name] = _plain(conn.execute(sa.select(query.c.value).where(query.c.id == customer_id)).scalar())
    return {name: found[name] for name in METRICS}


def distribution(conn: Connection, ctx: EvalContext) -> dict[str, dict[str, int]]:
    """Customers per lifecycle stage, RFM segment and value tier."""
    result = {}
    for name in SUMMARY:
        query = metric_query(name, ctx).subquery("metric")
        label = sa.func.coalesce(query.c.value, "(none)")
        rows = conn.execute(sa.select(label, sa.func.count()).group_by(label).order_by(sa.func.count().desc()))
        result[name] = {value: count for value, count in rows}
    return result
