"""The one place instants change representation.

The store keeps naive UTC (SQLite has no time zones, and one representation on both databases
keeps comparisons exact); everything above it works with aware instants. Nothing below the CLI
reads the wall clock: `at` is passed in.
"""

from __future__ import annotations

from datetime import datetime, timezone


def naive_utc(moment: datetime) -> datetime:
    """An instant as the store keeps it; a naive value is taken to be UTC already."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def aware_utc(moment: datetime) -> datetime:
    """An instant read from the store (naive UTC) or given aware, as an aware UTC instant."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 with an explicit +00:00 offset, or None."""
    return aware_utc(moment).isoformat() if moment is not None else None


def utc_now() -> datetime:
    """The wall clock, for the CLI and the daemon's loop only."""
    return datetime.now(timezone.utc)
