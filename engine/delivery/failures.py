"""Occurrences whose last attempt failed (a database error caused by data, a template that cannot
render for anyone, a bug): recorded on the occurrence, so `/metrics` of any process can count
them, and so the daemon can skip that campaign for a while instead of retrying it every step.

The occurrence keeps its phase (it is resumed exactly as a crashed one would be, by any process);
`finished_at` on an occurrence that is not done says when its last attempt failed, and reaching
`done` overwrites it. No column of its own: the schema is unchanged."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.core.status import OccurrencePhase
from engine.store.tables import occurrences


def record_failure(engine: Engine, campaign: str, occurrence: datetime, now: datetime) -> None:
    """Mark this occurrence's last attempt as failed (a no-op once it is done)."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(occurrences)
            .where(
                occurrences.c.campaign == campaign,
                occurrences.c.occurrence == occurrence,
                occurrences.c.status != OccurrencePhase.DONE,
            )
            .values(finished_at=now)
        )


def failing(conn: Connection) -> list[tuple[str, int]]:
    """(campaign, occurrences whose last attempt failed and that are not done yet)."""
    query = (
        sa.select(occurrences.c.campaign, sa.func.count())
        .where(occurrences.c.status != OccurrencePhase.DONE, occurrences.c.finished_at.is_not(None))
        .group_by(occurrences.c.campaign)
        .order_by(occurrences.c.campaign)
    )
    return [(campaign, count) for campaign, count in conn.execute(query)]


@dataclass
class Pause:
    """Campaigns that failed, skipped until a delay passes: 1 min, 2, 4 … at most an hour."""

    initial: timedelta = timedelta(minutes=1)
    maximum: timedelta = timedelta(hours=1)
    failures: dict[str, tuple[int, datetime]] = field(default_factory=dict)  # name → (count, until)

    def failed(self, campaign: str, now: datetime) -> timedelta:
        count = self.failures.get(campaign, (0, now))[0] + 1
        delay = min(self.initial * 2 ** (count - 1), self.maximum)
        self.failures[campaign] = (count, now + delay)
        return delay

    def succeeded(self, campaign: str) -> None:
        self.failures.pop(campaign, None)

    def paused(self, campaign: str, now: datetime) -> bool:
        entry = self.failures.get(campaign)
        return entry is not None and now < entry[1]
