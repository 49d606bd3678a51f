"""`nudge explain` of a triggered campaign: one customer's trigger events against the occurrence at
`at`, put to the planner's own tests (`trigger.window_tests`): which fall in its window and are
due, which an earlier occurrence took (with its ledger row), which still wait, and the verdict of
the keyed `not_followed_by` for each. Times in words are in the config's zone, as in `reasons`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.audience.trigger import (
    FIRST_WINDOW,
    MAX_LATE,
    SETTLE,
    Window,
    not_followed,
    same_as_trigger,
    seen_by_occurrence,
    window,
    window_tests,
)
from engine.core.clock import aware_utc, iso_utc, naive_utc
from engine.core.durations import format_duration
from engine.rules.campaign import Campaign
from engine.rules.conditions import FollowedBy
from engine.store.tables import deliveries, events, occurrences

SHOWN = 10  # the customer's latest trigger events; older ones are counted
FOLLOW_UPS = 3  # later events of the `not_followed_by` type shown per trigger event


def when(moment: datetime, zone: str) -> str:
    return aware_utc(moment).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


class TriggerState(StrEnum):
    """Where one trigger event stands at the explained instant."""

    DUE = "due"  # this occurrence takes it
    SUPPRESSED = "suppressed"  # followed by the `not_followed_by` event: no occurrence takes it
    WAITING = "waiting"  # its delay and the settle time are not over yet
    UNSEEN = "unseen"  # reached the store after this occurrence looked: the next one takes it
    ANSWERED = "answered"  # an earlier occurrence took it
    TOO_LATE = "too_late"  # more than MAX_LATE old when its window came: history, not a reminder
    BEFORE_CAMPAIGN = "before_campaign"  # before the campaign's first occurrence looked back


@dataclass
class FollowUp:
    """A later event of the `not_followed_by` type, and whether it counts against this trigger."""

    occurred_at: datetime
    counts: bool  # the same values of every `same` property (always, when unkeyed)
    keyed: dict[str, Any]  # its values of the `same` properties

    def as_json(self) -> dict[str, Any]:
        return {"occurred_at": iso_utc(self.occurred_at), "counts": self.counts, "keyed": self.keyed}


@dataclass
class TriggerEvent:
    occurred_at: datetime
    due_at: datetime  # occurred_at + delay + settle: the first instant an occurrence takes it
    properties: dict[str, Any]
    state: TriggerState
    occurrence: datetime | None = None  # the occurrence that takes (or took, or passed over) it
    delivery: dict[str, Any] | None = None  # that occurrence's ledger row for the customer
    follow_ups: list[FollowUp] = field(default_factory=list)
    verdict: str | None = None  # the keyed `not_followed_by`, in words

    def describe(self, at: datetime, zone: str) -> list[str]:
        """What becomes of it, for a person: the occurrence, its ledger row, the follow-up verdict."""
        by = "this occurrence"
        if self.occurrence is not None and self.occurrence != at:
            by = f"the occurrence of {when(self.occurrence, zone)}"
        text = {
            TriggerState.DUE: f"due since {when(self.due_at, zone)}: this occurrence takes it",
            TriggerState.WAITING: f"due at {when(self.due_at, zone)}",
            TriggerState.UNSEEN: "reached the store after this occurrence looked: the next one takes it",
            TriggerState.ANSWERED: f"taken by {by}",
            TriggerState.SUPPRESSED: f"passed over by {by}",
            TriggerState.TOO_LATE: f"more than {format_duration(MAX_LATE)} old when {by} looked: history",
            TriggerState.BEFORE_CAMPAIGN: "happened before the campaign's first occurrence looked back",
        }[self.state]
        found = [text]
        if self.delivery is not None:
            row = self.delivery
            found.append(f"delivery {row['id']}: {row['status']}" + (f" ({row['reason']})" if row["reason"] else ""))
        elif self.state is TriggerState.ANSWERED:
            found.append("no delivery: outside the audience or excluded at that occurrence")
        return found + ([self.verdict] if self.verdict else [])

    def as_json(self) -> dict[str, Any]:
        return {
            "occurred_at": iso_utc(self.occurred_at),
            "due_at": iso_utc(self.due_at),
            "properties": self.properties,
            "state": str(self.state),
            "occurrence": iso_utc(self.occurrence),
            "delivery": self.delivery,
            "followed_by": [f.as_json() for f in self.follow_ups],
            "verdict": self.verdict,
        }


@dataclass
class TriggerExplain:
    """One customer's trigger events at one instant, and the window of the occurrence there."""

    event: str
    delay: timedelta
    follow: FollowedBy | None
    at: datetime
    frame: Window
    previous: datetime | None  # the occurrence before this one (None: the campaign's first)
    planned: bool  # an occurrence at `at` has recorded what it saw
    events: list[TriggerEvent] = field(default_factory=list)
    older: int = 0  # earlier trigger events not shown

    @property
    def due(self) -> list[TriggerEvent]:
        return [e for e in self.events if e.state is TriggerState.DUE]

    def as_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "delay": format_duration(self.delay),
            "settle": format_duration(SETTLE),
            "not_followed_by": self.follow.model_dump() if self.follow else None,
            "window": {
                "occurrence": iso_utc(self.at),
                "happened_after": iso_utc(self._after()),
                "happened_by": iso_utc(self.frame.end),
                "previous_occurrence": iso_utc(self.previous),
                "previous_took_up_to": iso_utc(self.frame.taken_end if self.previous else None),
                "planned": self.planned,
            },
            "due": len(self.due),
            "events": [e.as_json() for e in self.events],
            "older_events": self.older,
        }

    def rule(self) -> str:
        """The trigger as a sentence: event, delay, settle time, follow-up."""
        delay = f"{format_duration(self.delay)} after it" if self.delay else "right after it"
        text = f"{self.event}, {delay} (+ {format_duration(SETTLE)} settle)"
        if self.follow is not None:
            keyed = f" with the same {' and '.join(self.follow.same)}" if self.follow.same else ""
            text += f"; not followed by {self.follow.type}{keyed}"
        return text

    def _after(self) -> datetime:
        """The earliest a trigger event in this window happened (exclusive): at most MAX_LATE before
        its end, and for a campaign's first occurrence at most FIRST_WINDOW before it."""
        late = self.frame.end - MAX_LATE
        return late if self.previous is not None else max(late, self.frame.taken_end)

    def window_text(self, zone: str) -> str:
        """Which trigger events the occurrence at this instant takes, by time and by what it saw."""
        frame = self.frame
        text = f"happened after {when(self._after(), zone)} and by {when(frame.end, zone)}"
        if self.previous is None:
            text += f" (a new campaign looks back {format_duration(FIRST_WINDOW)})"
        else:
            text += (
                f", less those the occurrence of {when(self.previous, zone)} took (they happened by "
                f"{when(frame.taken_end, zone)} and had reached the store when it looked)"
            )
        if self.planned:
            text += "; this occurrence was planned: it takes what had reached the store then"
        return text

    def summary(self, zone: str) -> str:
        """Why nothing is due, for the outcome line: what became of each trigger event."""
        counts: dict[str, int] = {}
        for item in self.events:
            counts[item.state] = counts.get(item.state, 0) + 1
        if not counts:
            return f"no {self.event} event by this instant"
        parts = [f"{n} {state.replace('_', ' ')}" for state, n in counts.items()]
        waiting = [e.due_at for e in self.events if e.state is TriggerState.WAITING]
        nxt = f"; the next is due at {when(min(waiting), zone)}" if waiting else ""
        return f"no {self.event} is due at this instant ({', '.join(parts)}){nxt}"


def _flags(conn: Connection, campaign: Campaign, frame: Window, customer_id: str) -> list[Any]:
    """The customer's latest trigger events by `at`, oldest first, with the planner's tests as 0/1."""
    checks = window_tests(campaign, frame, conn.dialect.name)
    kind = checks.pop("type")
    columns = [sa.case((test, 1), else_=0).label(name) for name, test in checks.items()]
    query = (
        sa.select(events.c.pk, events.c.occurred_at, events.c.properties, *columns)
        .where(events.c.customer_id == customer_id, kind, events.c.occurred_at <= frame.at)
        .order_by(events.c.occurred_at.desc(), events.c.pk.desc())
    )
    return list(reversed(conn.execute(query.limit(SHOWN)).all()))


def _taker(conn: Connection, campaign: Campaign, pk: int, due_at: datetime, before: datetime) -> Any:
    """The first occurrence (before `before`) that could see this event after its delay ended:
    the one whose window held it, and whose predecessor took what came before."""
    first = (
        sa.select(occurrences.c.occurrence)
        .select_from(occurrences.join(events, events.c.pk == pk))
        .where(
            occurrences.c.campaign == campaign.campaign,
            occurrences.c.occurrence >= due_at,
            occurrences.c.occurrence < before,
            seen_by_occurrence(conn.dialect.name),
        )
        .order_by(occurrences.c.occurrence)
        .limit(1)
    ).scalar_subquery()
    earlier = sa.select(sa.func.max(occurrences.c.occurrence)).where(
        occurrences.c.campaign == campaign.campaign, occurrences.c.occurrence < first
    )
    return conn.execute(sa.select(first.label("occurrence"), earlier.scalar_subquery().label("previous"))).one()


def _delivery(conn: Connection, campaign: Campaign, customer_id: str, occurrence: datetime) -> dict | None:
    row = conn.execute(
        sa.select(deliveries.c.id, deliveries.c.status, deliveries.c.reason).where(
            deliveries.c.campaign == campaign.campaign,
            deliveries.c.customer_id == customer_id,
            deliveries.c.occurrence == occurrence,
        )
    ).first()
    return {"id": row.id, "status": row.status, "reason": row.reason} if row else None


def _follow_ups(conn: Connection, follow: FollowedBy, pk: int, by: datetime) -> list[FollowUp]:
    """Later events of the `not_followed_by` type by `by`: those that count first, then the earliest."""
    later = events.alias("later")
    counts = same_as_trigger(later, follow, conn.dialect.name)
    query = (
        sa.select(later.c.occurred_at, later.c.properties, sa.case((counts, 1), else_=0).label("counts"))
        .select_from(later.join(events, events.c.pk == pk))
        .where(
            later.c.customer_id == events.c.customer_id,
            later.c.type == follow.type,
            later.c.occurred_at > events.c.occurred_at,
            later.c.occurred_at <= by,
        )
        .order_by(sa.desc("counts"), later.c.occurred_at, later.c.pk)
        .limit(FOLLOW_UPS)
    )
    return [
        FollowUp(r.occurred_at, bool(r.counts), {k: (r.properties or {}).get(k) for k in follow.same})
        for r in conn.execute(query)
    ]


def verdict(follow: FollowedBy, found: list[FollowUp], zone: str, so_far: bool = False) -> str:
    """The keyed `not_followed_by` in words, e.g. "checkout with the same cart_id at …: suppressed"."""
    keyed = f" with the same {' and '.join(follow.same)}" if follow.same else ""
    if found and found[0].counts:
        return f"{follow.type}{keyed} at {when(found[0].occurred_at, zone)}: suppressed"
    others = "; ".join(
        f"{follow.type} at {when(f.occurred_at, zone)} with "
        + ", ".join(f"{k} {json.dumps(v)}" if v is not None else f"no {k}" for k, v in f.keyed.items())
        + " does not count"
        for f in found
    )
    return f"no {follow.type}{keyed} after it" + (" so far" if so_far else "") + (f" ({others})" if others else "")


def _current(item: TriggerEvent, flags: Any, moment: datetime) -> TriggerEvent:
    """An event the previous occurrence did not take: this occurrence's, or one still to come."""
    if not flags["ended"]:
        item.state = TriggerState.WAITING
    elif not flags.get("seen", 1):
        item.state = TriggerState.UNSEEN
    else:
        item.occurrence = moment
        if not flags["recent"]:
            item.state = TriggerState.TOO_LATE
        elif not flags.get("not_followed", 1):
            item.state = TriggerState.SUPPRESSED
    return item


def _past(conn: Connection, campaign: Campaign, item: TriggerEvent, pk: int, moment: datetime) -> TriggerEvent:
    """An event an earlier occurrence took: which, and what that occurrence made of it."""
    trigger = campaign.trigger
    assert trigger is not None
    lag, dialect = item.due_at - item.occurred_at, conn.dialect.name
    taker = _taker(conn, campaign, pk, item.due_at, moment)
    item.state = TriggerState.BEFORE_CAMPAIGN
    if taker.occurrence is None:  # the first occurrence's look back started after it
        return item
    if taker.previous is None and item.occurred_at <= taker.occurrence - lag - FIRST_WINDOW:
        return item
    item.occurrence = taker.occurrence
    if item.occurred_at <= taker.occurrence - lag - MAX_LATE:
        item.state = TriggerState.TOO_LATE
    elif trigger.follow is not None and not _holds(conn, not_followed(trigger.follow, taker.occurrence, dialect), pk):
        item.state = TriggerState.SUPPRESSED
    else:
        item.state = TriggerState.ANSWERED
    return item


def _holds(conn: Connection, test: Any, pk: int) -> bool:
    return bool(conn.execute(sa.select(sa.case((test, 1), else_=0)).where(events.c.pk == pk)).scalar())


def explain_trigger(conn: Connection, campaign: Campaign, at: datetime, customer_id: str, zone: str) -> TriggerExplain:
    """One customer's trigger events at `at`, placed as the occurrence there places them."""
    trigger = campaign.trigger
    assert trigger is not None
    frame = window(conn, campaign, at)
    lag = trigger.delay + SETTLE
    moment = naive_utc(at)
    previous = conn.execute(
        sa.select(sa.func.max(occurrences.c.occurrence)).where(
            occurrences.c.campaign == campaign.campaign, occurrences.c.occurrence < moment
        )
    ).scalar()
    found = TriggerExplain(
        trigger.event, trigger.delay, trigger.follow, moment, frame, previous, frame.seen is not None
    )
    for row in _flags(conn, campaign, frame, customer_id):
        item = TriggerEvent(row.occurred_at, row.occurred_at + lag, row.properties or {}, TriggerState.DUE)
        if row.untaken:
            _current(item, row._mapping, moment)
        else:
            _past(conn, campaign, item, row.pk, moment)
        if item.occurrence is not None:
            item.delivery = _delivery(conn, campaign, customer_id, item.occurrence)
        if trigger.follow is not None:
            item.follow_ups = _follow_ups(conn, trigger.follow, row.pk, item.occurrence or moment)
            item.verdict = verdict(trigger.follow, item.follow_ups, zone, so_far=item.occurrence is None)
        found.events.append(item)
    total = conn.execute(
        sa.select(sa.func.count()).where(
            events.c.customer_id == customer_id, events.c.type == trigger.event, events.c.occurred_at <= moment
        )
    ).scalar()
    found.older = int(total or 0) - len(found.events)
    return found
