"""What the dashboard's pages show, as plain data for the templates: the campaigns list (schedule,
next and last occurrence, a sparkline of the targeted) and one campaign's report (its audience
over time, deliveries per day by channel and status, conversion and lift, variants, funnel).

The numbers come from engine.reports.summary, the same call `nudge report --format json` makes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from engine.core.clock import aware_utc, naive_utc
from engine.core.durations import format_duration
from engine.reports import charts
from engine.reports.history import audience_history, last_occurrences
from engine.reports.ledger import OccurrenceCounts
from engine.reports.lift import OccurrenceKey
from engine.reports.measure_view import funnel_view, measurement_view
from engine.reports.summary import Report
from engine.rules.campaign import Campaign
from engine.rules.journey import expand
from engine.rules.schedule import next_fire, trigger_for

SPARK_POINTS = 30  # the campaigns list: the last this many occurrences
MAX_POINTS = 1000  # a history chart: at most this many occurrences (the latest)
RANGES = {"30d": 30, "90d": 90, "1y": 365, "2y": 730, "all": 0}
DEFAULT_RANGE = "90d"


def schedule_text(campaign: Campaign) -> str:
    if campaign.trigger is not None:
        after = f" + {format_duration(campaign.trigger.delay)}" if campaign.trigger.delay else ""
        return f"on {campaign.trigger.event}{after}"
    if campaign.schedule is None:
        return "—"
    if isinstance(campaign.schedule, str):
        return f"cron {campaign.schedule}"
    return f"every {format_duration(campaign.schedule.every)}"


def local(moment: datetime | None, zone: str, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    return "—" if moment is None else moment.astimezone(ZoneInfo(zone)).strftime(fmt)


def campaign_rows(
    conn: Connection, rules: Sequence[Campaign], ledger_names: Sequence[str], zone: str, now: datetime
) -> list[dict[str, Any]]:
    """The campaigns list: every rule file's campaign, then names the ledger holds that no rule
    file has any more (retired campaigns still have a report)."""
    units = {c.campaign: expand(c) for c in rules}
    known = {u.campaign for group in units.values() for u in group}
    retired = sorted({n.split("/")[0] for n in ledger_names if n not in known and n.split("/")[0] not in units})
    entries = {u.campaign for group in units.values() for u in group[:1]} | set(retired)
    recent = audience_history(conn, sorted(entries), since=now - timedelta(days=400))
    lasts = last_occurrences(conn, sorted(known | set(retired)))
    rows = []
    for campaign in rules:
        group = units[campaign.campaign]
        history = recent.get(group[0].campaign, [])[-SPARK_POINTS:]
        last = max((lasts[u.campaign] for u in group if u.campaign in lasts), default=None)
        upcoming = next_fire(trigger_for(group[0], zone), now) if campaign.enabled and campaign.schedule else None
        rows.append(_row(campaign.campaign, campaign, history, last, upcoming, zone))
    for name in retired:
        rows.append(_row(name, None, recent.get(name, [])[-SPARK_POINTS:], lasts.get(name), None, zone))
    return rows


def _row(
    name: str,
    campaign: Campaign | None,
    history: list[dict[str, Any]],
    last: datetime | None,
    upcoming: datetime | None,
    zone: str,
) -> dict[str, Any]:
    targeted = [h["targeted"] for h in history]
    return {
        "name": name,
        "description": campaign.description if campaign else "no rule file any more: its ledger stays",
        "enabled": bool(campaign and campaign.enabled),
        "schedule": schedule_text(campaign) if campaign else "—",
        "kind": "journey" if campaign and campaign.steps else "campaign",
        "last": local(last, zone),
        "next": local(upcoming, zone) if upcoming else ("—" if campaign and campaign.enabled else "disabled"),
        "targeted": targeted[-1] if targeted else None,
        "spark": charts.sparkline(targeted, f"targeted at the last {len(targeted)} occurrences of {name}")
        if targeted
        else None,
    }


def history_view(rows: list[dict[str, Any]], name: str, zone: str) -> dict[str, Any]:
    """One unit's audience over time: matched, targeted and every exclusion that ever counted."""
    shown = rows[-MAX_POINTS:]
    every = dict.fromkeys(k for r in shown for k in r["excluded"])
    kinds = [k for k in every if any(r["excluded"].get(k) for r in shown)]  # a series of zeros says nothing
    series = [
        charts.Series("matched", [r["matched"] for r in shown]),
        charts.Series("targeted", [r["targeted"] for r in shown]),
        *(charts.Series(k.replace("_", " "), [r["excluded"].get(k, 0) for r in shown]) for k in kinds),
    ]
    x = [local(datetime.fromisoformat(r["occurrence"]), zone, "%Y-%m-%d %H:%M") for r in shown]
    return {
        "name": name,
        "count": len(rows),
        "cut": len(rows) - len(shown),
        "chart": charts.line_chart("history", f"audience of {name} over time", x, series, "customers"),
        "legend": charts.legend([s.name for s in series]),
        "last": shown[-1] if shown else None,
    }


def _days(since: date, until: date) -> list[str]:
    return [(since + timedelta(days=i)).isoformat() for i in range((until - since).days + 1)]


def deliveries_by_day(
    parts: dict[OccurrenceKey, OccurrenceCounts], zone: str, since: datetime | None
) -> list[dict[str, Any]]:
    """Ledger rows per local day of their occurrence (the workspace's time zone), channel and
    status, oldest first: the report's per-occurrence counts, regrouped."""
    local = ZoneInfo(zone)
    days: dict[tuple[str, str, str], int] = {}
    for (_, occurrence), counts in parts.items():
        if since is not None and occurrence <= naive_utc(since):
            continue
        day = aware_utc(occurrence).astimezone(local).date().isoformat()
        for (channel, status), number in counts.rows.items():
            days[(day, channel, status)] = days.get((day, channel, status), 0) + number
    return [{"day": d, "channel": c, "status": s, "count": n} for (d, c, s), n in sorted(days.items())]


def per_day_view(rows: list[dict[str, Any]], first: date | None, today: date) -> list[dict[str, Any]]:
    """Deliveries per day, one chart per channel, bars stacked by status."""
    if not rows:
        return []
    start = first or date.fromisoformat(rows[0]["day"])
    days = _days(min(start, date.fromisoformat(rows[0]["day"])), max(today, date.fromisoformat(rows[-1]["day"])))
    views = []
    for channel in sorted({r["channel"] for r in rows}):
        stacks = [charts.Stack(r["day"], r["status"], r["count"]) for r in rows if r["channel"] == channel]
        statuses = [s for s in charts.STATUS_COLOURS if any(x.status == s for x in stacks)]
        views.append(
            {
                "channel": channel,
                "total": sum(s.count for s in stacks),
                "chart": charts.stacked_days("per-day", f"{channel} deliveries per day", days, stacks),
                "legend": charts.legend(statuses, [charts.STATUS_COLOURS[s] for s in statuses]),
            }
        )
    return views


def campaign_view(
    conn: Connection, campaign: Campaign, report: Report, zone: str, now: datetime, range_key: str
) -> dict[str, Any]:
    """One campaign's report page (a journey: its steps' histories and its funnel)."""
    units = [u.campaign for u in expand(campaign)]
    days = RANGES.get(range_key, RANGES[DEFAULT_RANGE])
    since = now - timedelta(days=days) if days else None
    history = audience_history(conn, units, since)
    today = now.astimezone(ZoneInfo(zone)).date()
    first = today - timedelta(days=days - 1) if days else None
    mine = {key: counts for key, counts in report.by_occurrence.items() if key[0] in units}
    return {
        "name": campaign.campaign,
        "description": campaign.description,
        "enabled": campaign.enabled,
        "schedule": schedule_text(campaign),
        "channels": ", ".join(sorted({str(c) for u in expand(campaign) for c in u.channels})) or "coupons and tasks",
        "goal": f"{campaign.goal.event} within {format_duration(campaign.goal.within)}",
        "holdout": campaign.holdout,
        "range": range_key if range_key in RANGES else DEFAULT_RANGE,
        "ranges": list(RANGES),
        "histories": [history_view(history.get(u, []), u, zone) for u in units],
        "per_day": per_day_view(deliveries_by_day(mine, zone, since), first, today),
        "counts": {u: report.counts[u] for u in units if u in report.counts},
        "measurements": [measurement_view(u, report.lifts[u]) for u in units if u in report.lifts],
        "funnel": next((funnel_view(f) for f in report.funnels if f["journey"] == campaign.campaign), None),
    }
