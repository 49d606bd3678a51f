"""Where customers are in a journey, read from the ledger: set-based SQL for the step audiences,
and one customer's position for `explain` and `nudge customer`.

A customer's current pass through a journey starts at their latest entry (a row of the first
step). Step rows of that pass are those at or after the entry's occurrence."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.audience.context import EvalContext
from engine.core.clock import aware_utc, iso_utc, naive_utc
from engine.core.status import DeliveryStatus
from engine.rules.campaign import Campaign
from engine.rules.journey import JourneyPosition, Position
from engine.rules.schedule import next_fire, trigger_for
from engine.store.tables import customers, deliveries, events


def _entries(cond: JourneyPosition, at: datetime) -> Any:
    """Each customer's latest entry into the journey, up to `at`."""
    return (
        sa.select(deliveries.c.customer_id, sa.func.max(deliveries.c.occurrence).label("entered_at"))
        .where(deliveries.c.campaign == cond.steps[0], deliveries.c.occurrence <= at)
        .group_by(deliveries.c.customer_id)
        .subquery("entry")
    )


def _had(step: str, entry: Any) -> ColumnElement:
    """A row of this step in the current pass. Unbounded above on purpose: a step planned for a
    later instant (a neighbouring `--at`, a daemon ahead) must not be planned again."""
    row = sa.select(deliveries.c.id).where(
        deliveries.c.campaign == step,
        deliveries.c.customer_id == entry.c.customer_id,
        deliveries.c.occurrence >= entry.c.entered_at,
    )
    return sa.exists(row)


def _exited(cond: JourneyPosition, entry: Any, at: datetime) -> ColumnElement:
    if cond.exit_on is None:
        return sa.false()
    event = sa.select(events.c.pk).where(
        events.c.customer_id == entry.c.customer_id,
        events.c.type == cond.exit_on,
        events.c.occurred_at > entry.c.entered_at,
        events.c.occurred_at <= at,
    )
    return sa.exists(event)


def compile_journey(cond: JourneyPosition, ctx: EvalContext, loc: tuple) -> ColumnElement:
    at = ctx.at_utc
    entry = _entries(cond, at)
    if cond.test is Position.IN_JOURNEY:
        entry_row = sa.select(deliveries.c.id).where(
            deliveries.c.campaign == cond.steps[0],
            deliveries.c.customer_id == entry.c.customer_id,
            deliveries.c.occurrence == entry.c.entered_at,
            deliveries.c.status != DeliveryStatus.HELD_OUT,  # held out at entry: no step follows
        )
        inside = sa.select(entry.c.customer_id).where(
            sa.exists(entry_row), ~_had(cond.steps[-1], entry), ~_exited(cond, entry, at)
        )
        return customers.c.id.in_(inside)
    previous = deliveries.alias("previous")
    due = (
        sa.select(entry.c.customer_id)
        .join(
            previous,
            sa.and_(
                previous.c.customer_id == entry.c.customer_id,
                previous.c.campaign == cond.steps[cond.index - 1],
                previous.c.occurrence >= entry.c.entered_at,
                previous.c.occurrence <= at - cond.wait,
                previous.c.status != DeliveryStatus.HELD_OUT,
            ),
        )
        .where(~_had(cond.steps[cond.index], entry), ~_exited(cond, entry, at))
    )
    return customers.c.id.in_(due)


@dataclass
class StepRow:
    step: str
    occurrence: datetime
    status: str
    reason: str | None


@dataclass
class JourneyState:
    """One customer's current pass through a journey."""

    journey: str
    exit_event: str | None = None
    entered_at: datetime | None = None
    held_out: bool = False
    steps: list[StepRow] = field(default_factory=list)
    exited_at: datetime | None = None
    finished: bool = False
    next_step: str | None = None
    next_due_from: datetime | None = None  # the next step runs at the first tick at or after this
    next_due_at: datetime | None = None  # that tick, by the campaign's schedule

    def as_json(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "entered_at": iso_utc(self.entered_at),
            "held_out": self.held_out,
            "steps": [
                {"step": s.step, "occurrence": iso_utc(s.occurrence), "status": s.status, "reason": s.reason}
                for s in self.steps
            ],
            "exited_at": iso_utc(self.exited_at),
            "finished": self.finished,
            "next_step": self.next_step,
            "next_due_at": iso_utc(self.next_due_at),
        }

    def summary(self) -> str:
        """One line for a person: where the customer is and what comes next."""
        if self.entered_at is None:
            return "not in the journey (never entered)"
        if self.held_out:
            return "held out at entry (control group): no step is sent"
        last = self.steps[-1]
        if self.exited_at is not None:
            return f"left the journey on {self.exit_event} (after {last.step})"
        if self.finished:
            return f"finished the journey (last step {last.step}, {last.status})"
        due = "" if self.next_due_at else " (no further tick scheduled)"
        return f"at step {last.step} ({last.status}); next: {self.next_step}{due}"


def journey_state(conn: Any, campaign: Campaign, zone: str, at: datetime, customer_id: str) -> JourneyState:
    """Where the customer is: entry, the steps had in this pass, an exit, and what comes next
    (the first schedule tick at or after the previous step + `wait`, and not before `at`)."""
    assert campaign.steps is not None
    journey, at = campaign.campaign, naive_utc(at)
    steps = [(s.name, s.wait) for s in campaign.steps]
    exit_on = campaign.exit_on.event if campaign.exit_on else None
    state = JourneyState(journey, exit_on)
    names = [f"{journey}/{name}" for name, _ in steps]
    rows = conn.execute(
        sa.select(deliveries.c.campaign, deliveries.c.occurrence, deliveries.c.status, deliveries.c.reason)
        .where(
            deliveries.c.customer_id == customer_id,
            deliveries.c.campaign.in_(names),
            deliveries.c.occurrence <= at,
        )
        .order_by(deliveries.c.occurrence, deliveries.c.id)
    ).all()
    entries = [r for r in rows if r.campaign == names[0]]
    if not entries:
        return state
    entry = entries[-1]
    state.entered_at, state.held_out = entry.occurrence, entry.status == DeliveryStatus.HELD_OUT
    state.steps = [
        StepRow(r.campaign.split("/", 1)[1], r.occurrence, r.status, r.reason)
        for r in rows
        if r.occurrence >= entry.occurrence
    ]
    if exit_on is not None:
        state.exited_at = conn.execute(
            sa.select(sa.func.min(events.c.occurred_at)).where(
                events.c.customer_id == customer_id,
                events.c.type == exit_on,
                events.c.occurred_at > entry.occurrence,
                events.c.occurred_at <= at,
            )
        ).scalar()
    done = {s.step for s in state.steps}
    state.finished = state.held_out or steps[-1][0] in done
    if not state.finished and state.exited_at is None:
        upcoming = next(i for i, (name, _) in enumerate(steps) if name not in done)
        state.next_step = steps[upcoming][0]
        state.next_due_from = state.steps[-1].occurrence + (steps[upcoming][1] or timedelta(0))
        earliest = aware_utc(max(state.next_due_from, at)) - timedelta(microseconds=1)
        tick = next_fire(trigger_for(campaign, zone), earliest)
        state.next_due_at = naive_utc(tick) if tick else None
    return state
