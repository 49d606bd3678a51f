"""What `nudge serve` tells an operator's tooling: `/healthz` (store reachable, schema current)
and `/metrics` in Prometheus text format, read from the ledger at each scrape — so every daemon
and every process sees the same numbers, and nothing is lost when one restarts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from engine.core.clock import aware_utc, naive_utc
from engine.core.status import OPEN_STATES, DeliveryStatus
from engine.delivery.failures import failing
from engine.store import Store
from engine.store.db import head_revision, is_outage
from engine.store.tables import deliveries, occurrences

LATENCY_BUCKETS = (0.5, 1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 24 * 3600)
LATENCY_WINDOW = timedelta(hours=24)


def health(store: Store) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 200 when the store answers and its schema is the one this nudge needs."""
    try:
        current = store.current_revision()
    except Exception as exc:
        if not is_outage(exc):
            raise
        return 503, {"status": "unavailable", "store": "unreachable"}
    head = head_revision()
    if current != head:
        return 503, {"status": "unavailable", "store": "ok", "schema": current, "needs": head}
    return 200, {"status": "ok", "store": "ok", "schema": current}


class LedgerCollector(Collector):
    def __init__(self, store: Store, clock: Any):
        self.store, self.clock = store, clock

    def collect(self) -> Iterator[Any]:
        with self.store.engine.connect() as conn:
            yield self._deliveries(conn)
            yield from self._queue(conn)
            yield self._last_occurrence(conn)
            yield self._failing(conn)
            yield self._latency(conn)

    def _deliveries(self, conn: sa.Connection) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "nudge_deliveries",
            "Ledger rows by campaign, status and channel (email, sms, webhook; none: coupons and tasks only)",
            labels=["campaign", "status", "channel"],
        )
        columns = (deliveries.c.campaign, deliveries.c.status, deliveries.c.channel)
        counts = sa.select(*columns, sa.func.count()).group_by(*columns)
        for campaign, status, channel, number in conn.execute(counts):
            family.add_metric([campaign, status, channel], number)
        return family

    def _queue(self, conn: sa.Connection) -> Iterator[GaugeMetricFamily]:
        """What is due and not sent yet, apart from what waits by design (quiet hours): only the
        first growing old means something is stuck."""
        now = naive_utc(self.clock())
        is_open = deliveries.c.status.in_([str(s) for s in OPEN_STATES])
        later = sa.and_(deliveries.c.not_before.is_not(None), deliveries.c.not_before > now)
        due_since = sa.func.coalesce(deliveries.c.not_before, deliveries.c.created_at)
        due, deferred, oldest = conn.execute(
            sa.select(
                sa.func.count().filter(sa.not_(later)),
                sa.func.count().filter(later),
                sa.func.min(due_since).filter(sa.not_(later)),
            ).where(is_open)
        ).one()
        yield GaugeMetricFamily(
            "nudge_queue_depth", "Deliveries due now and not sent yet (pending or being sent)", value=due
        )
        yield GaugeMetricFamily(
            "nudge_deferred_deliveries",
            "Deliveries pending by design until a later hour (quiet hours in the customer's time zone)",
            value=deferred,
        )
        yield GaugeMetricFamily(
            "nudge_oldest_due_seconds",
            "How long the oldest due delivery has waited (0 when none is due)",
            value=max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0,
        )

    def _last_occurrence(self, conn: sa.Connection) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "nudge_last_occurrence_timestamp_seconds", "The latest occurrence of each campaign", labels=["campaign"]
        )
        query = sa.select(occurrences.c.campaign, sa.func.max(occurrences.c.occurrence)).group_by(
            occurrences.c.campaign
        )
        for campaign, moment in conn.execute(query):
            family.add_metric([campaign], aware_utc(moment).timestamp())
        return family

    def _failing(self, conn: sa.Connection) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "nudge_occurrences_failing",
            "Occurrences whose last attempt failed (a data or template problem); the daemon retries "
            "them with a growing pause while the other campaigns go on",
            labels=["campaign"],
        )
        for campaign, number in failing(conn):
            family.add_metric([campaign], number)
        return family

    def _latency(self, conn: sa.Connection) -> HistogramMetricFamily:
        """Seconds from the ledger row's creation to its sending, over the last day."""
        since = naive_utc(self.clock()) - LATENCY_WINDOW
        rows = conn.execute(
            sa.select(deliveries.c.created_at, deliveries.c.sent_at).where(
                deliveries.c.status == DeliveryStatus.SENT, deliveries.c.sent_at > since
            )
        )
        seconds = [max(0.0, (sent - created).total_seconds()) for created, sent in rows]
        buckets = [(str(edge), sum(1 for s in seconds if s <= edge)) for edge in LATENCY_BUCKETS]
        buckets.append(("+Inf", len(seconds)))
        return HistogramMetricFamily(
            "nudge_send_latency_seconds",
            "From planning a delivery to sending it, deliveries sent in the last 24 hours",
            buckets=buckets,
            sum_value=sum(seconds),
        )


def metrics_text(store: Store, clock: Any) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(store, clock))
    return generate_latest(registry)
