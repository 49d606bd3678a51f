"""Metrics for one customer, and how the whole base is distributed (group-bys in the database)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .compiler import EvalContext
from .metrics import METRICS, metric_query

SUMMARY = ("lifecycle", "rfm.segment", "value_tier")


def customer_metrics_of(conn: Connection, ctx: EvalContext, customer_id: str) -> dict[str, Any]:
    found = {}
    for name in METRICS:
        query = metric_query(name, ctx).subquery("metric")
        value = conn.execute(sa.select(query.c.value).where(query.c.id == customer_id)).scalar()
        found[name] = float(value) if hasattr(value, "__float__") and not isinstance(value, (int, float)) else value
    return found


def distribution(conn: Connection, ctx: EvalContext) -> dict[str, dict[str, int]]:
    """Customers per lifecycle stage, RFM segment and value tier."""
    result = {}
    for name in SUMMARY:
        query = metric_query(name, ctx).subquery("metric")
        label = sa.func.coalesce(query.c.value, "(none)")
        rows = conn.execute(sa.select(label, sa.func.count()).group_by(label).order_by(sa.func.count().desc()))
        result[name] = {value: count for value, count in rows}
    return result
