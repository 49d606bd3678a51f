"""What operators ask of the ledger: coupon exports, the task queue, delivery counts per campaign."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.clock import iso_utc
from engine.core.status import DeliveryStatus
from engine.store.tables import coupons, deliveries, tasks

COUPON_COLUMNS = (
    "code",
    "name",
    "customer_id",
    "campaign",
    "percent_off",
    "amount_off",
    "created_at",
    "expires_at",
    "delivery_status",
)
# The codes a customer may have seen: their message left, or may have.
# Coupons of these deliveries may have reached the customer.
SEEN = (DeliveryStatus.SENT, DeliveryStatus.UNKNOWN)


def _iso(value: Any) -> Any:
    return iso_utc(value) if isinstance(value, datetime) else value


def export_coupons(conn: Connection, out: IO[str], campaigns: Sequence[str] = (), everything: bool = False) -> int:
    """Write coupons as CSV a shop can import; by default only those whose message left."""
    query = (
        sa.select(*(coupons.c[c] for c in COUPON_COLUMNS[:-1]), deliveries.c.status.label("delivery_status"))
        .join(deliveries, deliveries.c.id == coupons.c.delivery_id)
        .order_by(coupons.c.id)
    )
    if campaigns:
        query = query.where(coupons.c.campaign.in_(list(campaigns)))
    if not everything:
        query = query.where(deliveries.c.status.in_(SEEN))
    writer = csv.writer(out)
    writer.writerow(COUPON_COLUMNS)
    count = 0
    for row in conn.execution_options(yield_per=5000).execute(query):
        writer.writerow([_iso(v) for v in row])
        count += 1
    return count


def list_tasks(conn: Connection, queue: str | None = None, status: str = "open") -> list[dict[str, Any]]:
    query = sa.select(tasks).order_by(tasks.c.due_at.is_(None), tasks.c.due_at, tasks.c.id)
    if queue:
        query = query.where(tasks.c.queue == queue)
    if status != "all":
        query = query.where(tasks.c.status == status)
    return [{k: _iso(v) for k, v in row._mapping.items()} for row in conn.execute(query)]


def delivery_counts(conn: Connection, campaigns: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Ledger rows per campaign and state (pending includes messages waiting for quiet hours), and
    per channel under `channels`. `targeted` counts customers (once per occurrence), not messages:
    a campaign on several channels writes a row per channel."""
    columns = (deliveries.c.campaign, deliveries.c.status, deliveries.c.channel)
    query = sa.select(*columns, sa.func.count()).group_by(*columns)
    if campaigns:
        query = query.where(deliveries.c.campaign.in_(list(campaigns)))
    counts: dict[str, dict[str, Any]] = {}
    for campaign, status, channel, number in conn.execute(query):
        row = counts.setdefault(campaign, {**{str(s): 0 for s in DeliveryStatus}, "channels": {}})
        row[status] += number
        by_channel = row["channels"].setdefault(channel, {str(s): 0 for s in DeliveryStatus})
        by_channel[status] += number
    reached = (
        sa.select(deliveries.c.campaign, deliveries.c.customer_id, deliveries.c.occurrence)
        .where(deliveries.c.status != DeliveryStatus.HELD_OUT)
        .distinct()
    )
    if campaigns:
        reached = reached.where(deliveries.c.campaign.in_(list(campaigns)))
    people = reached.subquery()
    by_campaign = sa.select(people.c.campaign, sa.func.count()).group_by(people.c.campaign)
    targeted: dict[str, int] = {c: n for c, n in conn.execute(by_campaign)}
    for campaign, row in counts.items():
        row["targeted"] = targeted.get(campaign, 0)
        row["resolved"] = 0
    # `unknown` deliveries the provider later confirmed (web/serve.py marks them so).
    resolved = sa.select(deliveries.c.campaign, sa.func.count()).where(deliveries.c.reason.like("resolved:%"))
    if campaigns:
        resolved = resolved.where(deliveries.c.campaign.in_(list(campaigns)))
    for campaign, number in conn.execute(resolved.group_by(deliveries.c.campaign)):
        if campaign in counts:
            counts[campaign]["resolved"] = number
    return dict(sorted(counts.items()))
