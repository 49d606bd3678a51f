"""The report per occurrence: each occurrence's ledger counts and measurement add up to the
campaign's. `live_parts` counts them all (what `nudge report` does); `KeptParts` keeps the ones
that no longer change between the dashboard's requests, so a campaign with two years of daily
occurrences is not measured from its whole ledger every time its page is opened.

An occurrence's counts are kept once none of its rows can change state any more (none pending,
sending or unknown; re-checked at every request through the status index), its measurement once
its goal window closed more than GRACE ago. Goal events imported later than that are picked up
when a kept occurrence is measured again: every REFRESH, a few of the oldest at each request."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.clock import naive_utc
from engine.reports.ledger import CHANGING, OccurrenceCounts, occurrence_counts
from engine.reports.lift import Goal, Lift, OccurrenceKey, measure_occurrences
from engine.store.tables import deliveries, occurrences

GRACE = timedelta(days=1)  # goal events may reach the store a little late
REFRESH = timedelta(hours=1)
REFRESH_PER_REQUEST = 20


@dataclass
class Parts:
    counts: dict[OccurrenceKey, OccurrenceCounts] = field(default_factory=dict)
    measured: dict[OccurrenceKey, Lift] = field(default_factory=dict)


def live_parts(
    conn: Connection, goals: dict[str, Goal], names: Sequence[str], revenue_property: str, default: Goal
) -> Parts:
    """Every occurrence of these campaigns, counted now."""
    return Parts(occurrence_counts(conn, names), measure_occurrences(conn, goals, names, revenue_property, default))


@dataclass
class _Kept:
    counts: OccurrenceCounts
    measured: Lift | None
    goal: Goal
    revenue_property: str
    at: datetime  # when it was counted


@dataclass
class KeptParts:
    """Parts of settled occurrences, kept in memory between requests (one per dashboard)."""

    _kept: dict[OccurrenceKey, _Kept] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def parts(
        self,
        conn: Connection,
        goals: dict[str, Goal],
        names: Sequence[str],
        revenue_property: str,
        default: Goal,
        now: datetime,
    ) -> Parts:
        """Every occurrence of these campaigns: kept ones as kept, the rest counted now."""
        keys = _occurrences(conn, names)
        changing = _changing(conn, names)
        with self._lock:
            kept = {k: self._kept[k] for k in keys if k in self._kept}
        goal_of = {name: goals.get(name, default) for name in names}
        fresh = [k for k in keys if not self._usable(kept.get(k), k, goal_of[k[0]], revenue_property, changing)]
        stale = sorted((e.at, k) for k, e in kept.items() if k not in fresh and e.at < naive_utc(now) - REFRESH)
        fresh += [k for _, k in stale[:REFRESH_PER_REQUEST]]
        counted = self._count(conn, goals, names, revenue_property, default, fresh, len(fresh) == len(keys))
        settled_before = naive_utc(now) - GRACE
        with self._lock:
            for key in fresh:
                counts, measured = counted.counts.get(key, OccurrenceCounts()), counted.measured.get(key)
                entry = _Kept(counts, measured, goal_of[key[0]], revenue_property, naive_utc(now))
                if key[1] + entry.goal[1] < settled_before and counts.still_open() == 0:
                    self._kept[key] = entry
                else:
                    self._kept.pop(key, None)  # changing again (a crashed send handed back): not kept
                kept[key] = entry
        result = Parts()
        for key, entry in kept.items():
            if entry.counts.rows:
                result.counts[key] = entry.counts
            if entry.measured is not None:
                result.measured[key] = entry.measured
        return result

    @staticmethod
    def _usable(entry: _Kept | None, key: OccurrenceKey, goal: Goal, revenue: str, changing: set) -> bool:
        return entry is not None and entry.goal == goal and entry.revenue_property == revenue and key not in changing

    @staticmethod
    def _count(conn, goals, names, revenue_property, default, keys, everything: bool) -> Parts:
        if not keys:
            return Parts()
        only = None if everything else sorted({k[1] for k in keys})
        return Parts(
            occurrence_counts(conn, names, only),
            measure_occurrences(conn, goals, names, revenue_property, default, only),
        )


def _occurrences(conn: Connection, names: Sequence[str]) -> list[OccurrenceKey]:
    """The occurrences of these campaigns the engine claimed (every planned one is)."""
    query = sa.select(occurrences.c.campaign, occurrences.c.occurrence).where(occurrences.c.campaign.in_(list(names)))
    return [(r.campaign, r.occurrence) for r in conn.execute(query)]


def _changing(conn: Connection, names: Sequence[str]) -> set[OccurrenceKey]:
    """Occurrences with rows that may still change state: few, found through the status index."""
    query = (
        sa.select(deliveries.c.campaign, deliveries.c.occurrence)
        .where(deliveries.c.status.in_(list(CHANGING)), deliveries.c.campaign.in_(list(names)))
        .distinct()
    )
    return {(r.campaign, r.occurrence) for r in conn.execute(query)}
