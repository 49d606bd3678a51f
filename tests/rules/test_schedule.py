"""Ticks from APScheduler triggers: cron in the config time zone across DST, intervals, catch-up."""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import TypeAdapter

from engine.rules.campaign import Campaign
from engine.rules.schedule import latest_fire, next_fire, trigger_for

UTC = timezone.utc


def campaign(schedule) -> Campaign:
    return TypeAdapter(Campaign).validate_python(
        {
            "campaign": "c",
            "schedule": schedule,
            "audience": {"event": "purchase"},
            "actions": [{"task": {"queue": "q", "title": "t"}}],
        }
    )


def ticks(schedule, zone: str, start: datetime, end: datetime) -> list[datetime]:
    trigger, found, now = trigger_for(campaign(schedule), zone), [], start
    while (tick := next_fire(trigger, now)) is not None and tick <= end:
        found.append(tick)
        now = tick
    return found


def test_daily_cron_runs_once_a_day_through_both_dst_changes():
    spring = ticks("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
    assert [t.isoformat() for t in spring] == [
        "2026-03-27T01:30:00+00:00",
        "2026-03-28T01:30:00+00:00",
        "2026-03-29T01:30:00+00:00",  # 02:30 does not exist that night: runs at 03:30 local
        "2026-03-30T00:30:00+00:00",
    ]
    autumn = ticks(
        "30 2 * * *", "Europe/Berlin", datetime(2026, 10, 23, tzinfo=UTC), datetime(2026, 10, 27, tzinfo=UTC)
    )
    assert [t.isoformat() for t in autumn] == [
        "2026-10-23T00:30:00+00:00",
        "2026-10-24T00:30:00+00:00",
        "2026-10-25T00:30:00+00:00",  # 02:30 happens twice that night: runs once
        "2026-10-26T01:30:00+00:00",
    ]


def test_hourly_cron_skips_the_repeated_hour_and_an_interval_does_not():
    start, end = datetime(2026, 10, 24, 22, 30, tzinfo=UTC), datetime(2026, 10, 25, 3, 30, tzinfo=UTC)
    cron = ticks("0 * * * *", "Europe/Berlin", start, end)
    interval = ticks({"every": "1h"}, "Europe/Berlin", start, end)
    assert [t.strftime("%H:%M") for t in cron] == ["23:00", "00:00", "02:00", "03:00"]  # 02:00 local once
    assert [t.strftime("%H:%M") for t in interval] == ["23:00", "00:00", "01:00", "02:00", "03:00"]


def test_cron_follows_the_config_time_zone():
    [tick] = ticks("0 9 * * *", "Asia/Shanghai", datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 1, 23, tzinfo=UTC))
    assert tick == datetime(2026, 6, 1, 1, 0, tzinfo=UTC)


def test_missed_ticks_collapse_into_the_latest_one():
    trigger = trigger_for(campaign({"every": "15m"}), "UTC")
    last_run = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    assert latest_fire(trigger, last_run, datetime(2026, 6, 1, 9, 50, tzinfo=UTC)) == datetime(
        2026, 6, 1, 9, 45, tzinfo=UTC
    )
    assert latest_fire(trigger, last_run, datetime(2026, 6, 1, 9, 10, tzinfo=UTC)) is None
    yearly = trigger_for(campaign("0 0 1 1 *"), "UTC")
    assert latest_fire(yearly, datetime(2020, 1, 2, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)) == datetime(
        2026, 1, 1, tzinfo=UTC
    )
