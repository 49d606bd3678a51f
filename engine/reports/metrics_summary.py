"""Metrics for one customer, and how the whole base is distributed (group-bys in the database)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.audience.compiler import EvalContext
from engine.audience.metrics import BUYER_FAMILY, METRICS, customer_row, metric_query
from engine.core.clock import iso_utc
from engine.store.tables import model_fits

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


def latest_fits(conn: Connection) -> list[dict[str, Any]]:
    """The most recent fit of each lifetime-value model, as stored by `nudge metrics refresh`."""
    newest = sa.select(model_fits.c.model, sa.func.max(model_fits.c.id).label("id")).group_by(model_fits.c.model)
    picked = newest.subquery()
    rows = conn.execute(sa.select(model_fits).join(picked, model_fits.c.id == picked.c.id).order_by(model_fits.c.model))
    return [
        {
            "model": row.model,
            "fitted_at": iso_utc(row.fitted_at),
            "data_from": iso_utc(row.data_from),
            "data_until": iso_utc(row.data_until),
            "customers": row.customers,
            "params": dict(row.params),
            "log_likelihood": row.log_likelihood,
        }
        for row in rows
    ]
