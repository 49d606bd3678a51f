"""APScheduler as the clock: its triggers say when a campaign fires (cron with DST, or every N).

Nothing here sleeps or reads the time; callers pass `now`.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from engine.rules.campaign import Campaign

# APScheduler loads when a schedule is first computed: the audience compiler imports this module
# for journeys, and a dry run of campaigns without one need not pay for it.
if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

# Interval schedules are aligned to this instant, so every daemon computes the same ticks.
EPOCH = datetime(2000, 1, 1)
_TINY = timedelta(microseconds=1)


# A triggered campaign without a schedule looks for due triggers this often.
TRIGGER_POLL = timedelta(seconds=5)


def trigger_for(campaign: Campaign, zone: str) -> BaseTrigger:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    tz = ZoneInfo(zone)
    if campaign.schedule is None:
        return IntervalTrigger(
            seconds=int(TRIGGER_POLL.total_seconds()), start_date=EPOCH.replace(tzinfo=tz), timezone=tz
        )
    if isinstance(campaign.schedule, str):
        return CronTrigger.from_crontab(campaign.schedule, timezone=tz)
    return IntervalTrigger(
        seconds=int(campaign.schedule.every.total_seconds()), start_date=EPOCH.replace(tzinfo=tz), timezone=tz
    )


def _wall(moment: datetime, trigger: BaseTrigger) -> datetime:
    return moment.astimezone(trigger.timezone).replace(tzinfo=None)


def _fires(trigger: BaseTrigger, after: datetime, until: datetime):
    """Ticks in (after, until], as UTC instants.

    Arithmetic and comparisons happen in UTC: between datetimes of the same ZoneInfo Python
    works on wall time and drops `fold`, which loses an hour when clocks fall back. A cron
    wall-clock time that repeats then fires once, as in cron; an interval is absolute time.
    """
    from apscheduler.triggers.cron import CronTrigger

    is_cron = isinstance(trigger, CronTrigger)
    after, until = after.astimezone(timezone.utc), until.astimezone(timezone.utc)
    latest_wall = _wall(after, trigger)
    last = after
    cursor = after + _TINY
    while True:
        # previous_fire_time=None: with one, CronTrigger ignores `now` and can stay stuck.
        found = trigger.get_next_fire_time(None, cursor)
        fire = found.astimezone(timezone.utc) if found is not None else None
        if fire is None or fire > until:
            return
        if fire <= last:
            cursor += timedelta(minutes=1)
            continue
        wall = _wall(fire, trigger)
        if not is_cron or wall > latest_wall:
            yield fire
        latest_wall = max(latest_wall, wall)
        last, cursor = fire, fire + _TINY


def latest_fire(trigger: BaseTrigger, after: datetime, until: datetime) -> datetime | None:
    """The last tick in (after, until], or None. However many ticks were missed, one answer:
    catching up runs a campaign once, not once per missed tick."""
    window = timedelta(days=1)
    while True:
        start = max(after, until - window)
        latest = None
        for fire in _fires(trigger, start, until):
            latest = fire
        if latest is not None or start == after:
            return latest
        window *= 4


def next_fire(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The first tick strictly after now (UTC)."""
    return next(_fires(trigger, now, now + timedelta(days=400)), None)
