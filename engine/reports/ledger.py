"""What operators ask of the ledger: coupon exports, the task queue, delivery counts per campaign."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
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
    return merge_counts(occurrence_counts(conn, campaigns))


@dataclass
class OccurrenceCounts:
    """One occurrence's ledger: rows by (channel, status), customers targeted, unknowns resolved."""

    rows: Counter = field(default_factory=Counter)
    targeted: int = 0
    resolved: int = 0

    def still_open(self) -> int:
        """Rows that may still change state (the sending may go on, a provider may confirm)."""
        return sum(n for (_, status), n in self.rows.items() if status in CHANGING)


# States a row can still leave: the counts of an occurrence with none of them stay as they are.
CHANGING = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN)


def occurrence_counts(
    conn: Connection, campaigns: Sequence[str] = (), only: Collection[datetime] | None = None
) -> dict[tuple[str, datetime], OccurrenceCounts]:
    """The ledger per (campaign, occurrence), of `only` those occurrences if given."""

    def scoped(query: sa.Select) -> sa.Select:
        if not campaigns:
            return query
        return query.where(rows_of(campaigns, only, tuple(DeliveryStatus)))

    key = (deliveries.c.campaign, deliveries.c.occurrence)
    found: dict[tuple[str, datetime], OccurrenceCounts] = {}
    columns = (*key, deliveries.c.channel, deliveries.c.status)
    for campaign, occurrence, channel, status, number in conn.execute(
        scoped(sa.select(*columns, sa.func.count())).group_by(*columns)
    ):
        found.setdefault((campaign, occurrence), OccurrenceCounts()).rows[(channel, status)] += number
    reached = scoped(sa.select(*key, deliveries.c.customer_id)).where(deliveries.c.status != DeliveryStatus.HELD_OUT)
    people = reached.distinct().subquery()
    for campaign, occurrence, number in conn.execute(
        sa.select(people.c.campaign, people.c.occurrence, sa.func.count()).group_by(
            people.c.campaign, people.c.occurrence
        )
    ):
        found[(campaign, occurrence)].targeted = number
    # `unknown` deliveries the provider later confirmed (web/serve.py marks them so).
    resolved = scoped(sa.select(*key, sa.func.count())).where(deliveries.c.reason.like("resolved:%"))
    for campaign, occurrence, number in conn.execute(resolved.group_by(*key)):
        found[(campaign, occurrence)].resolved = number
    return found


def rows_of(
    campaigns: Sequence[str], only: Collection[datetime] | None, statuses: Sequence[str]
) -> sa.ColumnElement[bool]:
    """Ledger rows of these campaigns in these states, of `only` these occurrences if given.

    A few occurrences of a long-running campaign are found by their ids through the status index
    (status, campaign, occurrence): grouped by customer, SQLite would rather walk every row of the
    campaign along ix_deliveries_campaign_customer to save itself a sort."""
    where = (deliveries.c.status.in_(list(statuses)), deliveries.c.campaign.in_(list(campaigns)))
    if only is None:
        return sa.and_(*where)
    return deliveries.c.id.in_(sa.select(deliveries.c.id).where(*where, deliveries.c.occurrence.in_(list(only))))


def merge_counts(parts: Mapping[tuple[str, datetime], OccurrenceCounts]) -> dict[str, dict[str, Any]]:
    """Occurrences' counts summed per campaign, in `delivery_counts`' shape, by campaign name."""
    counts: dict[str, dict[str, Any]] = {}
    for (campaign, _), part in parts.items():
        row = counts.setdefault(
            campaign, {**{str(s): 0 for s in DeliveryStatus}, "channels": {}, "targeted": 0, "resolved": 0}
        )
        for (channel, status), number in part.rows.items():
            row[status] += number
            by_channel = row["channels"].setdefault(channel, {str(s): 0 for s in DeliveryStatus})
            by_channel[status] += number
        row["targeted"] += part.targeted
        row["resolved"] += part.resolved
    return dict(sorted(counts.items()))
