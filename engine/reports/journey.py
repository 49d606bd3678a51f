"""A journey as a funnel: entered → each step (sent, skipped with why, failed) → left on the exit
event, finished, or still on the way. Counted per pass (an entry), from the ledger and events."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.clock import naive_utc
from engine.core.status import DeliveryStatus
from engine.rules.campaign import Campaign
from engine.store.tables import deliveries, events


@dataclass
class StepCount:
    step: str
    reached: int = 0
    statuses: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # by reason

    def as_json(self) -> dict[str, Any]:
        return {"step": self.step, "reached": self.reached, **dict(self.statuses), "skipped_by": dict(self.skipped)}


@dataclass
class Funnel:
    journey: str
    exit_on: str | None
    entered: int = 0
    held_out: int = 0
    steps: list[StepCount] = field(default_factory=list)
    exited: int = 0
    finished: int = 0
    in_progress: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "entered": self.entered,
            "held_out": self.held_out,
            "steps": [s.as_json() for s in self.steps],
            "exited": {"event": self.exit_on, "passes": self.exited},
            "finished": self.finished,
            "in_progress": self.in_progress,
        }


def _exits(conn: Connection, event: str | None, names: list[str], until: datetime | None) -> dict[str, list[datetime]]:
    """Exit events of the customers who have been in the journey, by customer, in time order."""
    if event is None:
        return {}
    who = sa.select(deliveries.c.customer_id).where(deliveries.c.campaign == names[0])
    query = (
        sa.select(events.c.customer_id, events.c.occurred_at)
        .where(events.c.type == event, events.c.customer_id.in_(who))
        .order_by(events.c.customer_id, events.c.occurred_at)
    )
    if until is not None:
        query = query.where(events.c.occurred_at <= until)
    found: dict[str, list[datetime]] = {}
    for customer_id, moment in conn.execute(query):
        found.setdefault(customer_id, []).append(moment)
    return found


def funnel(conn: Connection, journey: Campaign, at: datetime | None = None) -> Funnel:
    """Count every pass through the journey up to `at`; without it, every pass in the ledger (as
    the report's delivery and conversion tables count it: occurrences a `run --at` planned ahead
    of the clock included) and every exit event."""
    assert journey.steps is not None
    steps = [s.name for s in journey.steps]
    names = [f"{journey.campaign}/{s}" for s in steps]
    exit_on = journey.exit_on.event if journey.exit_on else None
    until = None if at is None else naive_utc(at)
    result = Funnel(journey.campaign, exit_on, steps=[StepCount(s) for s in steps])
    exits = _exits(conn, exit_on, names, until)
    query = (
        sa.select(deliveries.c.customer_id, deliveries.c.campaign, deliveries.c.occurrence, deliveries.c.status)
        .add_columns(deliveries.c.reason)
        .where(deliveries.c.campaign.in_(names))
        .order_by(deliveries.c.customer_id, deliveries.c.occurrence, deliveries.c.id)
    )
    if until is not None:
        query = query.where(deliveries.c.occurrence <= until)
    rows = conn.execution_options(yield_per=10_000).execute(query)
    passes: list[tuple[str, list[Any]]] = []
    for row in rows:
        if row.campaign == names[0] or not passes or passes[-1][0] != row.customer_id:
            passes.append((row.customer_id, []))
        passes[-1][1].append(row)
    for index, (customer_id, pass_rows) in enumerate(passes):
        entry = pass_rows[0]
        if entry.status == DeliveryStatus.HELD_OUT:
            result.held_out += 1
            continue
        result.entered += 1
        for row in pass_rows:
            count = result.steps[names.index(row.campaign)]
            count.reached += 1
            count.statuses[row.status] += 1
            if row.status == DeliveryStatus.SKIPPED:
                count.skipped[row.reason or "unknown"] += 1
        if pass_rows[-1].campaign == names[-1]:
            result.finished += 1
            continue
        following = passes[index + 1] if index + 1 < len(passes) else None
        ends = following[1][0].occurrence if following and following[0] == customer_id else until
        if any(entry.occurrence < moment and (ends is None or moment <= ends) for moment in exits.get(customer_id, [])):
            result.exited += 1
        else:
            result.in_progress += 1
    return result
