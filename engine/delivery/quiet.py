"""Quiet hours in the customer's local time: a send inside them waits for the window to close."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


def _inside(moment: time, start: time, end: time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end  # the window spans midnight


def release_time(at: datetime, zone: str, start: time, end: time) -> datetime | None:
    """None if `at` is outside quiet hours for this zone; else the UTC instant the window ends."""
    local = at.astimezone(ZoneInfo(zone))
    if not _inside(local.time().replace(tzinfo=None), start, end):
        return None
    day = local.date() if local.time() < end else local.date() + timedelta(days=1)
    opening = datetime.combine(day, end, tzinfo=ZoneInfo(zone))
    return opening.astimezone(timezone.utc)
