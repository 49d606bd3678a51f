"""Did it work? Conversion of contacted customers against the holdout, per campaign.

A delivery converts when its customer has a purchase in (occurrence, occurrence + window].
Contacted means `sent`; the control group is `held_out`. The difference of the two rates comes
with a 95% confidence interval (normal approximation for two proportions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.status import DeliveryStatus
from engine.store.sqljson import NUMBER, TEXT, json_value
from engine.store.tables import coupons, deliveries, events

Z95 = 1.959964


@dataclass
class Arm:
    customers: int = 0
    converted: int = 0
    revenue: float = 0.0

    @property
    def rate(self) -> float | None:
        return self.converted / self.customers if self.customers else None

    @property
    def revenue_per_customer(self) -> float | None:
        return self.revenue / self.customers if self.customers else None


@dataclass
class Lift:
    campaign: str
    contacted: Arm
    holdout: Arm
    coupons_issued: int = 0
    coupons_redeemed: int = 0

    def difference(self) -> tuple[float, float, float] | None:
        """(contacted rate − holdout rate, low, high) at 95%; None without both groups."""
        p1, p0 = self.contacted.rate, self.holdout.rate
        if p1 is None or p0 is None:
            return None
        se = math.sqrt(p1 * (1 - p1) / self.contacted.customers + p0 * (1 - p0) / self.holdout.customers)
        diff = p1 - p0
        return diff, diff - Z95 * se, diff + Z95 * se

    def as_json(self) -> dict[str, Any]:
        diff = self.difference()
        return {
            "campaign": self.campaign,
            "contacted": {
                "customers": self.contacted.customers,
                "converted": self.contacted.converted,
                "conversion": self.contacted.rate,
                "revenue_per_customer": self.contacted.revenue_per_customer,
            },
            "holdout": {
                "customers": self.holdout.customers,
                "converted": self.holdout.converted,
                "conversion": self.holdout.rate,
                "revenue_per_customer": self.holdout.revenue_per_customer,
            },
            "lift": None
            if diff is None
            else {
                "difference": diff[0],
                "ci95": [diff[1], diff[2]],
                "relative": diff[0] / self.holdout.rate if self.holdout.rate else None,
                "significant": diff[1] > 0 or diff[2] < 0,
            },
            "coupons": {
                "issued": self.coupons_issued,
                "redeemed": self.coupons_redeemed,
                "redemption": self.coupons_redeemed / self.coupons_issued if self.coupons_issued else None,
            },
        }


def within_after(moment: Any, start: Any, window: timedelta, dialect: str) -> sa.ColumnElement:
    """start < moment <= start + window. SQLite has no timestamp arithmetic: compare Julian days."""
    if dialect == "postgresql":
        return sa.and_(moment > start, moment <= start + window)
    return sa.and_(
        moment > start, sa.func.julianday(moment) <= sa.func.julianday(start) + window.total_seconds() / 86400
    )


def lift(
    conn: Connection, window: timedelta, campaigns: Sequence[str] = (), revenue_property: str = "amount"
) -> list[Lift]:
    dialect = conn.dialect.name
    in_window = (
        events.c.customer_id == deliveries.c.customer_id,
        events.c.type == "purchase",
        within_after(events.c.occurred_at, deliveries.c.occurrence, window, dialect),
    )
    converted = sa.case((sa.exists(sa.select(events.c.pk).where(*in_window)), 1), else_=0)
    amount = json_value(events.c.properties, revenue_property, NUMBER, dialect)
    revenue = sa.select(sa.func.coalesce(sa.func.sum(amount), 0.0)).where(*in_window).scalar_subquery()
    query = (
        sa.select(
            deliveries.c.campaign, deliveries.c.status, sa.func.count(), sa.func.sum(converted), sa.func.sum(revenue)
        )
        .where(deliveries.c.status.in_([DeliveryStatus.SENT, DeliveryStatus.HELD_OUT]))
        .group_by(deliveries.c.campaign, deliveries.c.status)
    )
    if campaigns:
        query = query.where(deliveries.c.campaign.in_(list(campaigns)))
    found: dict[str, Lift] = {}
    for campaign, status, count, conversions, money in conn.execute(query):
        entry = found.setdefault(campaign, Lift(campaign, Arm(), Arm()))
        arm = entry.contacted if status == DeliveryStatus.SENT else entry.holdout
        arm.customers, arm.converted, arm.revenue = count, int(conversions or 0), float(money or 0)
    _redemptions(conn, found, window, dialect)
    return [found[name] for name in sorted(found)]


def _redemptions(conn: Connection, found: dict[str, Lift], window: timedelta, dialect: str) -> None:
    """Coupons whose message was sent, and those a purchase carried (its coupon_code) in the window."""
    code = json_value(events.c.properties, "coupon_code", TEXT, dialect)
    redeemed = sa.exists(
        sa.select(events.c.pk).where(
            events.c.customer_id == coupons.c.customer_id,
            events.c.type == "purchase",
            within_after(events.c.occurred_at, deliveries.c.occurrence, window, dialect),
            code == coupons.c.code,
        )
    )
    query = (
        sa.select(coupons.c.campaign, sa.func.count(), sa.func.sum(sa.case((redeemed, 1), else_=0)))
        .join(deliveries, deliveries.c.id == coupons.c.delivery_id)
        .where(deliveries.c.status == DeliveryStatus.SENT, coupons.c.campaign.in_(list(found)))
        .group_by(coupons.c.campaign)
    )
    for campaign, issued, used in conn.execute(query):
        found[campaign].coupons_issued, found[campaign].coupons_redeemed = issued, int(used or 0)
