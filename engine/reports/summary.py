"""`nudge report`'s numbers, gathered once for every way they are shown (the terminal tables,
`--format json`, the dashboard and `--html`): deliveries by state, conversion and lift on each
campaign's goal, journeys' funnels, and the audience history."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection

from engine.reports.history import audience_history
from engine.reports.journey import funnel
from engine.reports.ledger import OccurrenceCounts, merge_counts
from engine.reports.lift import Goal, OccurrenceKey, merge_lifts
from engine.reports.rollup import Parts, live_parts
from engine.rules.campaign import Campaign
from engine.rules.journey import expand

DEFAULT_GOAL = ("purchase", timedelta(days=7))


@dataclass
class Report:
    window: str
    counts: dict[str, dict[str, Any]]
    lifts: dict[str, dict[str, Any]]
    funnels: list[dict[str, Any]]
    # Ledger name (CAMPAIGN or CAMPAIGN/STEP) → its recorded occurrences, oldest first.
    audience: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # The ledger per occurrence, which the counts add up (the dashboard's deliveries per day).
    by_occurrence: dict[OccurrenceKey, OccurrenceCounts] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "campaigns": [
                {"campaign": name, **row, "measurement": self.lifts.get(name)} for name, row in self.counts.items()
            ],
            "journeys": self.funnels,
            "audience": self.audience,
        }


def ledger_names(rules: Sequence[Campaign], names: Sequence[str]) -> tuple[str, ...]:
    """The ledger's names for what the user named: a journey's name stands for its steps
    (CAMPAIGN/STEP); an unknown name stays as it is (the ledger may still hold it)."""
    by_name = {c.campaign: c for c in rules}
    return tuple(
        n for name in names for n in ([s.campaign for s in expand(by_name[name])] if name in by_name else [name])
    )


def build_report(
    conn: Connection,
    rules: Sequence[Campaign],
    campaigns: Sequence[str] = (),
    span: timedelta | None = None,
    revenue_property: str = "amount",
    window: str | None = None,
    source: Callable[[Connection, dict[str, Goal], Sequence[str], str, Goal], Parts] = live_parts,
) -> Report:
    """Everything `nudge report` shows for these campaigns (all in the ledger when none are named).

    `rules` give each campaign's goal (`span`, written as `window`, overrides its window) and the
    journeys; a report still works without them, measuring purchases within 7 days. `source`
    gives the ledger's counts and measurements per occurrence (the dashboard keeps settled ones)."""
    units = {unit.campaign: unit for campaign in rules for unit in expand(campaign)}
    goals = {name: (unit.goal.event, span or unit.goal.within) for name, unit in units.items()}
    journeys = [c for c in rules if c.steps and (not campaigns or c.campaign in campaigns)]
    names = ledger_names(rules, campaigns)
    default = (DEFAULT_GOAL[0], span or DEFAULT_GOAL[1])
    parts = source(conn, goals, names, revenue_property, default)
    return Report(
        window=window or "per campaign goal",
        counts=merge_counts(parts.counts),
        lifts={entry.campaign: entry.as_json() for entry in merge_lifts(parts.measured.values())},
        funnels=[funnel(conn, journey).as_json() for journey in journeys],  # the whole ledger, as above
        audience=audience_history(conn, names),
        by_occurrence=parts.counts,
    )
