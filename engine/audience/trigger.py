"""Triggered campaigns (`trigger: {event, delay}`): which customers an occurrence is for.

Each occurrence T of a triggered campaign takes the trigger events whose delay has ended by T
(less SETTLE) among those it could see when it was first planned (its horizon H), minus what the
previous occurrence P already took (seen within H_P and ended by P). Because horizons and instants
grow together (fix_horizon keeps it so when occurrences are planned out of order), "taken so far"
is exactly that one rectangle, so:

- each trigger event is taken by at most one occurrence, and the ledger row of (campaign,
  customer, occurrence) is written once: at most one message per trigger, whatever reruns or
  crashes happen (two triggers of one customer in one window are answered once);
- an event that reaches the store late (a collector's retry, a sender that was down, an import
  that commits long after it began) is taken by the next occurrence, unless it is older than
  MAX_LATE: a backfill of last month's events is history, not a flood of stale reminders. A new
  campaign looks back FIRST_WINDOW.

The horizon is recorded per database (HORIZONS). SQLite has one writer at a time, so pk order is
commit order: the highest event pk (`watermark`). PostgreSQL numbers a row when it is written and
shows it when its transaction commits: while an import holds thousands of written rows, events
committed beside it get higher pks and are seen first, so "every pk below the highest I saw was
seen" is false there. So an occurrence keeps its snapshot, and each event the id of the
transaction that wrote it (`events.xid`): the occurrence saw the event if that transaction had
committed when the snapshot was taken. Snapshots only grow, as watermarks do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import UserDefinedType

from engine.core.clock import naive_utc
from engine.core.status import OccurrencePhase
from engine.rules.campaign import Campaign
from engine.rules.conditions import FollowedBy
from engine.store.sqljson import json_same
from engine.store.tables import customers, events, occurrences

FIRST_WINDOW = timedelta(minutes=10)
# An event is taken once its delay ended at least this long ago: one that happened a moment ago
# may still be in flight to the store.
SETTLE = timedelta(seconds=5)
MAX_LATE = timedelta(hours=1)


class _PgSnapshot(UserDefinedType):
    cache_ok = True

    def get_col_spec(self, **kw) -> str:
        return "pg_snapshot"


@dataclass(frozen=True)
class Horizon:
    """One way to record which events an occurrence could see."""

    column: sa.Column  # where the occurrence keeps it
    now: Callable[[], ColumnElement[Any]]  # its value for an occurrence planned now
    seen: Callable[[Any], ColumnElement[bool]]  # the events a recorded value could see


WATERMARK = Horizon(
    occurrences.c.watermark,
    lambda: sa.select(sa.func.coalesce(sa.func.max(events.c.pk), 0)).scalar_subquery(),
    lambda pk: events.c.pk <= pk,
)
SNAPSHOT = Horizon(
    occurrences.c.snapshot,
    lambda: sa.cast(sa.func.pg_current_snapshot(), sa.Text),
    # xid NULL: written before revision 0008, so committed before any snapshot recorded.
    lambda snapshot: sa.or_(
        events.c.xid.is_(None), sa.func.pg_visible_in_snapshot(events.c.xid, sa.cast(snapshot, _PgSnapshot))
    ),
)
# What each database records. Read back by whichever is set: a PostgreSQL occurrence planned
# before revision 0008 keeps its watermark.
HORIZONS = {"sqlite": WATERMARK, "postgresql": SNAPSHOT}
_RECORDED = (SNAPSHOT, WATERMARK)


@dataclass(frozen=True)
class Window:
    end: datetime  # trigger events that happened at or before this (naive UTC)…
    seen: ColumnElement[bool] | None  # …that this occurrence could see (None: all the query sees)
    taken_end: datetime  # what the previous occurrence took: happened by this…
    taken_seen: ColumnElement[bool] | None  # …and seen by it (None: any)
    at: datetime  # the occurrence: a follow-up counts up to here


def _seen(occurrence: Row | None) -> ColumnElement[bool] | None:
    """The events an occurrence could see, by the horizon it recorded (None: it recorded none)."""
    if occurrence is None:
        return None
    for horizon in _RECORDED:
        value = occurrence._mapping[horizon.column]
        if value is not None:
            return horizon.seen(value)
    return None


def window(conn: Connection, campaign: Campaign, at: datetime) -> Window:
    assert campaign.trigger is not None
    moment = naive_utc(at)
    lag = campaign.trigger.delay + SETTLE
    horizons = [h.column for h in _RECORDED]
    mine = conn.execute(
        sa.select(*horizons).where(occurrences.c.campaign == campaign.campaign, occurrences.c.occurrence == moment)
    ).first()
    previous = conn.execute(
        sa.select(occurrences.c.occurrence, *horizons)
        .where(occurrences.c.campaign == campaign.campaign, occurrences.c.occurrence < moment)
        .order_by(occurrences.c.occurrence.desc())
        .limit(1)
    ).first()
    taken_end = moment - FIRST_WINDOW - lag if previous is None else previous.occurrence - lag
    return Window(moment - lag, _seen(mine), taken_end, _seen(previous), moment)


def same_as_trigger(later: Any, follow: FollowedBy, dialect: str) -> ColumnElement[bool]:
    """`later` (an alias of events) shares every `same` property with the trigger event (`events`)."""
    return sa.and_(
        sa.true(), *(json_same(later.c.properties, events.c.properties, key, dialect) for key in follow.same)
    )


def not_followed(follow: FollowedBy, at: datetime, dialect: str) -> ColumnElement[bool]:
    """No `not_followed_by` event after the trigger event and by `at`, keyed to this trigger event,
    not to the customer's latest one."""
    later = events.alias("later")
    return ~sa.exists(
        sa.select(later.c.pk).where(
            later.c.customer_id == events.c.customer_id,
            later.c.type == follow.type,
            later.c.occurred_at > events.c.occurred_at,
            later.c.occurred_at <= at,
            same_as_trigger(later, follow, dialect),
        )
    )


def window_tests(campaign: Campaign, frame: Window, dialect: str) -> dict[str, ColumnElement[bool]]:
    """Each test an occurrence puts a trigger event to, by name: it takes the events passing all.
    (`nudge explain` shows them one by one.)"""
    trigger = campaign.trigger
    assert trigger is not None
    taken = events.c.occurred_at <= frame.taken_end
    if frame.taken_seen is not None:
        taken = sa.and_(taken, frame.taken_seen)
    found = {
        "type": events.c.type == trigger.event,
        "ended": events.c.occurred_at <= frame.end,  # its delay and the settle time are over
        "recent": events.c.occurred_at > frame.end - MAX_LATE,
        "untaken": sa.not_(taken),  # by the previous occurrence
    }
    if frame.seen is not None:
        found["seen"] = frame.seen  # it had reached the store when this occurrence looked
    if trigger.follow is not None:
        found["not_followed"] = not_followed(trigger.follow, frame.at, dialect)
    return found


def _in_window(campaign: Campaign, frame: Window, dialect: str) -> tuple[ColumnElement, ...]:
    return tuple(window_tests(campaign, frame, dialect).values())


def seen_by_occurrence(dialect: str) -> ColumnElement[bool]:
    """Did the occurrence (a row of `occurrences`) see the event (a row of `events`), by the
    horizon it recorded? As `_seen` reads one occurrence, for a join of the two tables."""
    recorded = [h for h in _RECORDED if h is not SNAPSHOT or dialect == "postgresql"]
    cases: list[ColumnElement[bool]] = []
    unset: list[ColumnElement[bool]] = []
    for horizon in recorded:
        cases.append(sa.and_(*unset, horizon.column.is_not(None), horizon.seen(horizon.column)))
        unset.append(horizon.column.is_(None))
    cases.append(sa.and_(*unset))  # none recorded yet: it takes what its query sees
    return sa.or_(*cases)


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


def fix_horizon(conn: Connection, campaign: str, occurrence: datetime) -> None:
    """Record the events this occurrence could see, once (a resumed run keeps the first).

    Also for every earlier occurrence still to be planned (claimed, then stopped or still waiting
    for the planning lock): it will take what this one leaves to it, so horizons grow in
    occurrence order even when an occurrence is planned after a later one."""
    horizon = HORIZONS[conn.dialect.name]
    conn.execute(
        sa.update(occurrences)
        .where(
            occurrences.c.campaign == campaign,
            occurrences.c.occurrence <= occurrence,
            occurrences.c.status == OccurrencePhase.PLANNING,
            *(h.column.is_(None) for h in _RECORDED),
        )
        .values({horizon.column: horizon.now()})
    )
