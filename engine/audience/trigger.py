"""Triggered campaigns (`trigger: {event, delay}`): which customers an occurrence is for.

Occurrences of a triggered campaign tile time: the one at T takes the trigger events whose delay
ended in (P, T] (less SETTLE), P being the campaign's previous occurrence (a new campaign looks
back FIRST_WINDOW). Each trigger event falls in exactly one occurrence, and the ledger row of
(campaign, customer, occurrence) is written once, so a customer gets at most one message per
trigger event, whatever reruns or crashes happen; two triggers of one customer in the same short
window are answered once."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from engine.core.clock import naive_utc
from engine.rules.campaign import Campaign
from engine.store.tables import customers, events, occurrences

FIRST_WINDOW = timedelta(minutes=10)
# Events reach the store a moment after they happen (a collector's batch, a slow request): an
# occurrence takes only triggers whose delay ended at least this long ago, so none slips past.
SETTLE = timedelta(seconds=5)


def window(conn: Connection, campaign: Campaign, at: datetime) -> tuple[datetime, datetime]:
    """(start, end] of trigger event times this occurrence takes, naive UTC."""
    assert campaign.trigger is not None
    moment = naive_utc(at)
    previous = conn.execute(
        sa.select(sa.func.max(occurrences.c.occurrence)).where(
            occurrences.c.campaign == campaign.campaign, occurrences.c.occurrence < moment
        )
    ).scalar()
    start = previous if previous is not None else moment - FIRST_WINDOW
    lag = campaign.trigger.delay + SETTLE
    return start - lag, moment - lag


def _in_window(campaign: Campaign, start: datetime, end: datetime) -> tuple[ColumnElement, ...]:
    assert campaign.trigger is not None
    return (events.c.type == campaign.trigger.event, events.c.occurred_at > start, events.c.occurred_at <= end)


def triggered(conn: Connection, campaign: Campaign, at: datetime) -> ColumnElement:
    """Customers with a trigger event whose delay ended in this occurrence's window."""
    start, end = window(conn, campaign, at)
    return customers.c.id.in_(sa.select(events.c.customer_id).where(*_in_window(campaign, start, end)))


def has_due(conn: Connection, campaign: Campaign, at: datetime) -> bool:
    """Is there anything for an occurrence at `at` to do? (The daemon skips empty ones.)"""
    start, end = window(conn, campaign, at)
    found = conn.execute(sa.select(sa.exists(sa.select(events.c.pk).where(*_in_window(campaign, start, end))))).scalar()
    return bool(found)


def trigger_events(conn: Connection, campaign: Campaign, ids: list[str], at: datetime) -> dict[str, dict]:
    """Each customer's latest trigger event in this occurrence's window: `trigger` in templates."""
    start, end = window(conn, campaign, at)
    found: dict[str, dict] = {}
    query = (
        sa.select(events.c.customer_id, events.c.type, events.c.occurred_at, events.c.properties)
        .where(events.c.customer_id.in_(ids), *_in_window(campaign, start, end))
        .order_by(events.c.occurred_at, events.c.pk)
    )
    for row in conn.execute(query):
        found[row.customer_id] = {"type": row.type, "occurred_at": row.occurred_at, "properties": row.properties or {}}
    return found
