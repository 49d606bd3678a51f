"""Reading the audience history (engine.delivery.history writes it) and each campaign's last
occurrence: what `nudge report` and the dashboard chart over time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.clock import aware_utc, iso_utc, naive_utc
from engine.store import tables
from engine.store.tables import occurrences

HISTORY_COLUMNS = (
    "matched",
    "excluded",
    "targeted",
    "held_out",
    "variants",
    "locales",
    "channels",
    "planning_seconds",
)


def audience_history(
    conn: Connection, campaigns: Sequence[str] = (), since: datetime | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Campaign → its recorded occurrences, oldest first (a journey's steps as CAMPAIGN/STEP)."""
    table = tables.audience_history
    columns = [table.c[name] for name in HISTORY_COLUMNS]
    query = sa.select(table.c.campaign, table.c.occurrence, *columns).order_by(table.c.campaign, table.c.occurrence)
    if campaigns:
        query = query.where(table.c.campaign.in_(list(campaigns)))
    if since is not None:
        query = query.where(table.c.occurrence > naive_utc(since))
    found: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(query):
        entry = {"occurrence": iso_utc(row.occurrence), **{name: row._mapping[name] for name in HISTORY_COLUMNS}}
        entry["excluded"] = dict(entry["excluded"] or {})
        found.setdefault(row.campaign, []).append(entry)
    return found


def last_occurrences(conn: Connection, campaigns: Sequence[str]) -> dict[str, datetime]:
    """Campaign → its latest occurrence run (or being run), aware UTC."""
    query = (
        sa.select(occurrences.c.campaign, sa.func.max(occurrences.c.occurrence))
        .where(occurrences.c.campaign.in_(list(campaigns)))
        .group_by(occurrences.c.campaign)
    )
    return {name: aware_utc(moment) for name, moment in conn.execute(query) if moment is not None}
