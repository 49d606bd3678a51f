"""The coupons a batch's templates see: each delivery's own, and for a journey step those its
earlier steps issued in the current pass."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.store.tables import coupons, deliveries


def coupons_for(
    conn: Connection, campaign: str, occurrence: datetime, customer_ids: Sequence[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Coupons of this occurrence for these customers, as templates see them: {customer: {name: {...}}}.
    By customer, not by row: a campaign on several channels issues them on one row (the first
    channel reached) and its text message names the same code as its email."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    if not customer_ids:
        return found
    query = (
        sa.select(coupons)
        .join(deliveries, deliveries.c.id == coupons.c.delivery_id)
        .where(
            deliveries.c.campaign == campaign,
            deliveries.c.occurrence == occurrence,
            deliveries.c.customer_id.in_(list(set(customer_ids))),
        )
    )
    for row in conn.execute(query):
        found.setdefault(row.customer_id, {})[row.name] = _coupon(row)
    return found


def earlier_coupons(
    conn: Connection, campaigns: Sequence[str], customer_ids: Sequence[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """The latest coupon of each name these customers got from these campaigns (a journey's earlier
    steps: the latest is the current pass's), as templates see them: {customer: {name: {...}}}."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    if not campaigns or not customer_ids:
        return found
    query = (
        sa.select(coupons)
        .where(coupons.c.campaign.in_(list(campaigns)), coupons.c.customer_id.in_(list(customer_ids)))
        .order_by(coupons.c.created_at, coupons.c.id)
    )
    for row in conn.execute(query):
        found.setdefault(row.customer_id, {})[row.name] = _coupon(row)
    return found


def _coupon(row: Any) -> dict[str, Any]:
    return {
        "code": row.code,
        "percent_off": row.percent_off,
        "amount_off": row.amount_off,
        "expires_at": row.expires_at,
        "name": row.name,
    }
