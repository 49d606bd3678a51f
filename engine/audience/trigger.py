"""Triggered campaigns (`trigger: {event, delay}`): which customers an occurrence is for.

Each occurrence T of a triggered campaign takes the trigger events whose delay has ended by T
(less SETTLE) among those in the store when it was first planned (event pk ≤ its watermark W),
minus what the previous occurrence P already took (pk ≤ W_P and ended by P). Because watermarks
and instants only grow, "taken so far" is exactly that one rectangle, so:

- each trigger event is taken by at most one occurrence, and the ledger row of (campaign,
  customer, occurrence) is written once: at most one message per trigger, whatever reruns or
  crashes happen (two triggers of one customer in one window are answered once);
- an event that reaches the store late (a collector's retry, a sender that was down) is taken by
  the next occurrence, unless it is older than MAX_LATE: a backfill of last month's events is
  history, not a flood of stale reminders. A new campaign looks back FIRST_WINDOW."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from engine.core.clock import naive_utc
from engine.rules.campaign import Campaign
from engine.store.sqljson import json_same
from engine.store.tables import customers, events, occurrences

FIRST_WINDOW = timedelta(minutes=10)
# An event is taken once its delay ended at least this long ago: one that happened a moment ago
# may still be in flight to the store.
SETTLE = timedelta(seconds=5)
MAX_LATE = timedelta(hours=1)


@dataclass(frozen=True)
class Window:
    end: datetime  # trigger events that happened at or before this (naive UTC)…
    watermark: int  # …and were in the store when the occurrence was planned (pk ≤ this)
    taken_end: datetime  # what the previous occurrence took: happened by this…
    taken_watermark: int | None  # …with pk ≤ this (None: any pk)
    at: datetime  # the occurrence: a follow-up counts up to here


def newest_event(conn: Connection) -> int:
    return conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.pk), 0))).scalar_one()


def window(conn: Connection, campaign: Campaign, at: datetime) -> Window:
    assert campaign.trigger is not None
    moment = naive_utc(at)
    lag = campaign.trigger.delay + SETTLE
    mine = conn.execute(
        sa.select(occurrences.c.watermark).where(
            occurrences.c.campaign == campaign.campaign, occurrences.c.occurrence == moment
        )
    ).scalar()
    previous = conn.execute(
        sa.select(occurrences.c.occurrence, occurrences.c.watermark)
        .where(occurrences.c.campaign == campaign.campaign, occurrences.c.occurrence < moment)
        .order_by(occurrences.c.occurrence.desc())
        .limit(1)
    ).first()
    if previous is None:
        taken_end, taken_watermark = moment - FIRST_WINDOW - lag, None
    else:
        taken_end, taken_watermark = previous.occurrence - lag, previous.watermark
    return Window(moment - lag, mine if mine is not None else newest_event(conn), taken_end, taken_watermark, moment)


def _in_window(campaign: Campaign, frame: Window, dialect: str) -> tuple[ColumnElement, ...]:
    trigger = campaign.trigger
    assert trigger is not None
    taken = events.c.occurred_at <= frame.taken_end
    if frame.taken_watermark is not None:
        taken = sa.and_(taken, events.c.pk <= frame.taken_watermark)
    clauses = [
        events.c.type == trigger.event,
        events.c.pk <= frame.watermark,
        events.c.occurred_at <= frame.end,
        events.c.occurred_at > frame.end - MAX_LATE,
        sa.not_(taken),
    ]
    follow = trigger.follow
    if follow is not None:  # keyed to this trigger event, not to the customer's latest one
        later = events.alias("later")
        keyed = [json_same(later.c.properties, events.c.properties, key, dialect) for key in follow.same]
        clauses.append(
            ~sa.exists(
                sa.select(later.c.pk).where(
                    later.c.customer_id == events.c.customer_id,
                    later.c.type == follow.type,
                    later.c.occurred_at > events.c.occurred_at,
                    later.c.occurred_at <= frame.at,
                    *keyed,
                )
            )
        )
    return tuple(clauses)


def triggered(conn: Connection, campaign: Campaign, at: datetime) -> ColumnElement:
    """Customers with a trigger event this occurrence takes."""
    frame = window(conn, campaign, at)
    return customers.c.id.in_(sa.select(events.c.customer_id).where(*_in_window(campaign, frame, conn.dialect.name)))


def has_due(conn: Connection, campaign: Campaign, at: datetime) -> bool:
    """Is there anything for an occurrence at `at` to do? (The daemon skips empty ones.)"""
    frame = window(conn, campaign, at)
    found = conn.execute(
        sa.select(sa.exists(sa.select(events.c.pk).where(*_in_window(campaign, frame, conn.dialect.name))))
    ).scalar()
    return bool(found)


def trigger_events(conn: Connection, campaign: Campaign, ids: list[str], at: datetime) -> dict[str, dict]:
    """Each customer's latest trigger event this occurrence takes: `trigger` in templates."""
    frame = window(conn, campaign, at)
    found: dict[str, dict] = {}
    query = (
        sa.select(events.c.customer_id, events.c.type, events.c.occurred_at, events.c.properties)
        .where(events.c.customer_id.in_(ids), *_in_window(campaign, frame, conn.dialect.name))
        .order_by(events.c.occurred_at, events.c.pk)
    )
    for row in conn.execute(query):
        found[row.customer_id] = {"type": row.type, "occurred_at": row.occurred_at, "properties": row.properties or {}}
    return found


def fix_watermark(conn: Connection, campaign: str, occurrence: datetime) -> None:
    """Record the events this occurrence will consider, once (a resumed run keeps the first)."""
    conn.execute(
        sa.update(occurrences)
        .where(
            occurrences.c.campaign == campaign,
            occurrences.c.occurrence == occurrence,
            occurrences.c.watermark.is_(None),
        )
        .values(watermark=newest_event(conn))
    )
