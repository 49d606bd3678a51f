"""Did it work? Conversion of contacted customers against the holdout, per campaign.

A delivery converts when its customer has a purchase in (occurrence, occurrence + window].
Contacted means `sent`; the control group is `held_out`. The difference of the two rates comes
with a 95% confidence interval (normal approximation for two proportions).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.durations import format_duration
from engine.core.status import DeliveryStatus
from engine.reports.ledger import rows_of
from engine.store.sqljson import NUMBER, TEXT, json_value
from engine.store.tables import coupons, customers, deliveries, events

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
    goal: tuple[str, timedelta] = ("purchase", timedelta(days=7))
    variants: dict[str, Arm] = field(default_factory=dict)

    def difference(self) -> tuple[float, float, float] | None:
        """(contacted rate − holdout rate, low, high) at 95%; None without both groups. Newcombe's
        interval, as for variants: the normal approximation claimed an effect from a holdout of
        0 of 3 and gave a zero-width interval for 0 of 3 against 0 of 1."""
        if not self.contacted.customers or not self.holdout.customers:
            return None
        return difference_interval(self.contacted, self.holdout)

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
            "goal": {"event": self.goal[0], "within": format_duration(self.goal[1])},
            "variants": [
                {"name": name, **_arm_json(arm), "ci95": list(proportion_interval(arm))}
                for name, arm in sorted(self.variants.items())
            ],
            "verdict": verdict(self.variants) if len(self.variants) > 1 else None,
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


Goal = tuple[str, timedelta]
OccurrenceKey = tuple[str, datetime]  # (campaign, occurrence) as the ledger keeps them


def lift(
    conn: Connection,
    goals: Mapping[str, Goal],
    campaigns: Sequence[str] = (),
    revenue_property: str = "amount",
    default: Goal = ("purchase", timedelta(days=7)),
) -> list[Lift]:
    """Per campaign in the ledger: contacted vs holdout (and per variant) on its goal."""
    return merge_lifts(measure_occurrences(conn, goals, campaigns, revenue_property, default).values())


def measure_occurrences(
    conn: Connection,
    goals: Mapping[str, Goal],
    campaigns: Sequence[str] = (),
    revenue_property: str = "amount",
    default: Goal = ("purchase", timedelta(days=7)),
    only: Collection[datetime] | None = None,
) -> dict[OccurrenceKey, Lift]:
    """The measurement of each occurrence of these campaigns (of `only` those occurrences): they
    add up to the campaign's, and one whose goal window has closed no longer changes (the
    dashboard keeps those instead of measuring two years of the ledger at every request)."""
    names = list(campaigns)
    if not names:
        names = list(conn.execute(sa.select(deliveries.c.campaign).distinct()).scalars())
    by_goal: dict[Goal, list[str]] = {}
    for name in names:
        by_goal.setdefault(goals.get(name, default), []).append(name)
    found: dict[OccurrenceKey, Lift] = {}
    for goal, group in by_goal.items():
        _measure(conn, goal, group, revenue_property, found, only)
        _redemptions(conn, group, found, goal[1], only)
    return found


def merge_lifts(parts: Iterable[Lift]) -> list[Lift]:
    """Occurrences' measurements summed per campaign, by campaign name."""
    found: dict[str, Lift] = {}
    for part in parts:
        entry = found.setdefault(part.campaign, Lift(part.campaign, Arm(), Arm(), goal=part.goal))
        for mine, theirs in ((entry.contacted, part.contacted), (entry.holdout, part.holdout)):
            _add(mine, theirs)
        for name, arm in part.variants.items():
            _add(entry.variants.setdefault(name, Arm()), arm)
        entry.coupons_issued += part.coupons_issued
        entry.coupons_redeemed += part.coupons_redeemed
    return [found[name] for name in sorted(found)]


def _add(total: Arm, part: Arm) -> None:
    total.customers += part.customers
    total.converted += part.converted
    total.revenue += part.revenue


def _ledger_rows(query: Any, group: list[str], only: Collection[datetime] | None, statuses: Sequence[str]) -> Any:
    """Rows of these campaigns in these states (of `only` these occurrences)."""
    return query.where(rows_of(group, only, statuses))


def _measure(
    conn: Connection,
    goal: Goal,
    group: list[str],
    revenue_property: str,
    found: dict[OccurrenceKey, Lift],
    only: Collection[datetime] | None,
) -> None:
    dialect = conn.dialect.name
    event, window = goal

    def in_window(customer: Any, occurrence: Any) -> tuple[Any, ...]:
        return (
            events.c.customer_id == customer,
            events.c.type == event,
            within_after(events.c.occurred_at, occurrence, window, dialect),
        )

    # One entry per customer and occurrence: a campaign on several channels has a ledger row per
    # channel, and a customer reached by email and text is one contacted customer, not two. Whether
    # they converted is decided there, once (an aggregate subquery is not merged into the outer one).
    bought = sa.exists(sa.select(events.c.pk).where(*in_window(deliveries.c.customer_id, deliveries.c.occurrence)))
    reached = _ledger_rows(
        sa.select(
            deliveries.c.campaign,
            deliveries.c.customer_id,
            deliveries.c.occurrence,
            sa.func.min(deliveries.c.status).label("status"),  # never both: held out means no message at all
            sa.func.max(deliveries.c.variant).label("variant"),
            sa.case((bought, 1), else_=0).label("bought"),
        ),
        group,
        only,
        (DeliveryStatus.SENT, DeliveryStatus.HELD_OUT),
    )
    reached = reached.group_by(deliveries.c.campaign, deliveries.c.customer_id, deliveries.c.occurrence).subquery()
    amount = json_value(events.c.properties, revenue_property, NUMBER, dialect)
    spent = sa.select(sa.func.coalesce(sa.func.sum(amount), 0.0)).where(
        *in_window(reached.c.customer_id, reached.c.occurrence)
    )
    # The revenue is read only for who converted: most did not, and it reads each event's properties.
    query = sa.select(
        reached.c.campaign,
        reached.c.occurrence,
        reached.c.status,
        reached.c.variant,
        sa.func.count(),
        sa.func.sum(reached.c.bought),
        sa.func.sum(sa.case((reached.c.bought == 1, spent.scalar_subquery()), else_=0.0)),
    ).group_by(reached.c.campaign, reached.c.occurrence, reached.c.status, reached.c.variant)
    for campaign, occurrence, status, variant, count, conversions, money in conn.execute(query):
        entry = found.setdefault((campaign, occurrence), Lift(campaign, Arm(), Arm(), goal=goal))
        arm = Arm(count, int(conversions or 0), float(money or 0))
        _add(entry.contacted if status == DeliveryStatus.SENT else entry.holdout, arm)
        if status == DeliveryStatus.SENT and variant is not None:
            _add(entry.variants.setdefault(variant, Arm()), arm)


def _arm_json(arm: Arm) -> dict[str, Any]:
    return {"customers": arm.customers, "converted": arm.converted, "conversion": arm.rate}


def proportion_interval(arm: Arm) -> tuple[float | None, float | None]:
    """95% interval of a conversion rate (Wilson score: sound near 0% and with small arms)."""
    if not arm.customers:
        return None, None
    n, p = arm.customers, arm.converted / arm.customers
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return centre - half, centre + half


Z80 = 0.841621  # one-sided z for 80% power


def difference_interval(top: Arm, other: Arm) -> tuple[float, float, float]:
    """(difference of rates, low, high) at 95%: Newcombe's hybrid score interval, built from the
    two Wilson intervals, so it stays honest with small arms and rates near 0% or 100%."""
    p1, p0 = top.converted / top.customers, other.converted / other.customers
    low1, high1 = proportion_interval(top)
    low0, high0 = proportion_interval(other)
    assert low1 is not None and high1 is not None and low0 is not None and high0 is not None
    diff = p1 - p0
    return (
        diff,
        diff - math.sqrt((p1 - low1) ** 2 + (high0 - p0) ** 2),
        diff + math.sqrt((high1 - p1) ** 2 + (p0 - low0) ** 2),
    )


def verdict(variants: Mapping[str, Arm]) -> str:
    """The best variant against the runner-up, in plain words."""
    ranked = sorted(variants.items(), key=lambda item: -(item[1].rate or 0.0))
    (best, top), (second, other) = ranked[0], ranked[1]
    if not top.customers or not other.customers:
        return "no detectable difference yet: a variant has no customers"
    diff, low, high = difference_interval(top, other)
    if low > 0:
        return (
            f"{best} converts better than {second}: {100 * diff:+.1f} pp, "
            f"95% interval {100 * low:+.1f}…{100 * high:+.1f}"
        )
    if diff <= 0:
        return "no detectable difference yet: the variants convert alike so far"
    # Customers per arm to detect this gap with 80% power (pooled rate: never a zero variance).
    pooled = (top.converted + other.converted) / (top.customers + other.customers)
    needed = (Z95 + Z80) ** 2 * 2 * pooled * (1 - pooled) / diff**2
    more = max(1, math.ceil(needed) - min(top.customers, other.customers))
    return f"no detectable difference yet: need about {more:,} more per arm (if the gap of {100 * diff:.1f} pp holds)"


def _redemptions(
    conn: Connection,
    group: list[str],
    found: dict[OccurrenceKey, Lift],
    window: timedelta,
    only: Collection[datetime] | None,
) -> None:
    """Coupons whose message was sent, and those a purchase carried (its coupon_code) in the window."""
    dialect = conn.dialect.name
    code = json_value(events.c.properties, "coupon_code", TEXT, dialect)
    redeemed = sa.exists(
        sa.select(events.c.pk).where(
            events.c.customer_id == coupons.c.customer_id,
            events.c.type == "purchase",
            within_after(events.c.occurred_at, deliveries.c.occurrence, window, dialect),
            code == coupons.c.code,
        )
    )
    query = _ledger_rows(
        sa.select(
            deliveries.c.campaign,
            deliveries.c.occurrence,
            sa.func.count(),
            sa.func.sum(sa.case((redeemed, 1), else_=0)),
        ).join(coupons, deliveries.c.id == coupons.c.delivery_id),
        group,
        only,
        (DeliveryStatus.SENT,),
    ).group_by(deliveries.c.campaign, deliveries.c.occurrence)
    for campaign, occurrence, issued, used in conn.execute(query):
        entry = found.get((campaign, occurrence))
        if entry is not None:  # sent, so measured
            entry.coupons_issued, entry.coupons_redeemed = issued, int(used or 0)


def programme_lift(
    conn: Connection, share: float, at: datetime, since: timedelta, revenue_property: str = "amount"
) -> Lift:
    """The whole programme's effect: purchase rate in (at − since, at] of everyone else against the
    global control group (`limits.global_holdout`), who no campaign contacts."""
    from engine.audience.assignment import GLOBAL_SALT, holdout_test
    from engine.core.clock import naive_utc

    dialect = conn.dialect.name
    end = naive_utc(at)
    window = (
        events.c.customer_id == customers.c.id,
        events.c.type == "purchase",
        events.c.occurred_at > end - since,
        events.c.occurred_at <= end,
    )
    amount = json_value(events.c.properties, revenue_property, NUMBER, dialect)
    query = sa.select(
        customers.c.id,
        sa.exists(sa.select(events.c.pk).where(*window)),
        sa.select(sa.func.coalesce(sa.func.sum(amount), 0.0)).where(*window).scalar_subquery(),
    )
    result = Lift("(all campaigns)", Arm(), Arm(), goal=("purchase", since))
    held_out = holdout_test(GLOBAL_SALT, share)
    for customer_id, bought, money in conn.execution_options(yield_per=10_000).execute(query):
        arm = result.holdout if held_out is not None and held_out(customer_id) else result.contacted
        arm.customers += 1
        arm.converted += int(bool(bought))
        arm.revenue += float(money or 0)
    return result
