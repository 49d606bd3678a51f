"""`received:` — a condition on the ledger: what this customer got from a campaign (or a journey
step), compiled to set-based SQL like every other leaf.

A delivery's time is its occurrence instant, so `--at` replays stay exact; deliveries of later
occurrences do not exist for an evaluation at `at`."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.audience.context import EvalContext
from engine.audience.operators import NUMERIC, compare, holds_for_nothing, not_followed_by, window_clauses
from engine.rules.conditions import Ops, ReceivedCondition
from engine.store.tables import customers, deliveries, events


def delivery_filters(spec: Any, ctx: EvalContext) -> list[ColumnElement]:
    """WHERE clauses on `deliveries` for the campaign, the statuses and the window (never after `at`)."""
    return [
        deliveries.c.campaign == spec.campaign,
        deliveries.c.status.in_([str(s) for s in spec.status]),
        *window_clauses(deliveries.c.occurrence, spec, ctx.at_utc),
    ]


def compile_received(cond: ReceivedCondition, ctx: EvalContext, loc: tuple) -> ColumnElement:
    spec = cond.received
    ops = spec.count or Ops(gte=1)
    filters = delivery_filters(spec, ctx)
    test = compare(sa.func.count(), ops, NUMERIC, ctx, loc + ("received", "count"))
    counted = sa.select(deliveries.c.customer_id).where(*filters).group_by(deliveries.c.customer_id)
    if spec.not_followed_by:
        summary = counted.add_columns(sa.func.max(deliveries.c.occurrence).label("last_at")).having(test).subquery()
        return customers.c.id.in_(
            sa.select(summary.c.customer_id).where(
                not_followed_by(spec.not_followed_by, ctx, summary.c.customer_id, summary.c.last_at)
            )
        )
    if ops.operator == ("gte", 1):  # the common case, "has had it": no grouping needed
        return customers.c.id.in_(sa.select(deliveries.c.customer_id).where(*filters))
    if holds_for_nothing(ops, 0):
        # `count: {eq: 0}` and the like: a customer with no such delivery matches too.
        return customers.c.id.not_in(counted.having(sa.not_(sa.func.coalesce(test, sa.false()))))
    return customers.c.id.in_(counted.having(test))


def received_value(conn: Any, cond: ReceivedCondition, ctx: EvalContext, customer_id: str) -> dict[str, Any]:
    """What `explain` shows: how many such deliveries, the last one's occurrence, a later event."""
    from engine.core.clock import iso_utc

    spec = cond.received
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.max(deliveries.c.occurrence)).where(
            deliveries.c.customer_id == customer_id, *delivery_filters(spec, ctx)
        )
    ).one()
    found: dict[str, Any] = {"count": row[0], "last_at": iso_utc(row[1])}
    if spec.not_followed_by and row[1] is not None:
        later = conn.execute(
            sa.select(sa.func.min(events.c.occurred_at)).where(
                events.c.customer_id == customer_id,
                events.c.type == spec.not_followed_by,
                events.c.occurred_at > row[1],
                events.c.occurred_at <= ctx.at_utc,
            )
        ).scalar()
        found[f"next_{spec.not_followed_by}_at"] = iso_utc(later)
    return found
