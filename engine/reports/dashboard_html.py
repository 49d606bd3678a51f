"""The dashboard's pages as HTML (Jinja, autoescaped), for `nudge serve`'s /ui/ and for
`nudge report --html`, which writes the same campaign sections into one self-contained file.

Styles are inline and charts are inline SVG (engine.reports.charts): a page makes no request,
to the server or anywhere else, beyond the links a person clicks (and, live, the preview frame)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from sqlalchemy.engine import Connection

from engine.reports.campaign_view import campaign_rows, campaign_view, local
from engine.reports.rollup import KeptParts, live_parts
from engine.reports.summary import build_report
from engine.reports.timeline import campaigns_in_ledger
from engine.rules.campaign import Campaign
from engine.rules.config import Config

ASSETS = Path(__file__).resolve().parent / "assets" / "dashboard"
COUNT_COLUMNS = ("sent", "failed", "unknown", "pending", "held_out", "skipped")
TIME_COLUMNS = frozenset(
    {"occurrence", "sent_at", "expires_at", "due_at", "created_at", "updated_at", "at", "occurred_at"}
    | {"signed_up_at", "unsubscribed_at", "sms_unsubscribed_at", "email_confirmed_at"}
)


@dataclass(frozen=True)
class Frame:
    """What every page says in its header, and how its links are written."""

    workspace: str
    zone: str
    now: datetime
    live: bool  # on `nudge serve` (links to other pages) or a saved file (anchors only)
    root: str = ""  # the way from this page back to /ui/, relative (a proxy may serve us under a prefix)


@functools.cache
def _environment() -> jinja2.Environment:
    # Our own pages, not a marketer's templates: a plain environment, autoescaped, built once.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ASSETS)), autoescape=True, undefined=jinja2.StrictUndefined
    )


@functools.cache
def _style() -> str:
    return (ASSETS / "dashboard.css").read_text(encoding="utf-8")


def render(template: str, frame: Frame, title: str, page: str, **context: Any) -> str:
    def when(value: Any) -> str:
        if not value:
            return "" if value is None else str(value)
        return local(datetime.fromisoformat(value), frame.zone, "%Y-%m-%d %H:%M") if isinstance(value, str) else value

    return (
        _environment()
        .get_template(template)
        .render(
            title=title,
            page=page,
            live=frame.live,
            root=frame.root,
            workspace=frame.workspace,
            zone=frame.zone,
            generated=f"as of {local(frame.now, frame.zone)}",
            style=_style(),
            n=lambda value: f"{value:,}",
            when=when,
            local_iso=lambda value: local(datetime.fromisoformat(value), frame.zone),
            time_columns=TIME_COLUMNS,
            count_columns=COUNT_COLUMNS,
            **context,
        )
    )


def campaigns_page(conn: Connection, frame: Frame, rules: Sequence[Campaign]) -> str:
    rows = campaign_rows(conn, rules, campaigns_in_ledger(conn), frame.zone, frame.now)
    return render(
        "campaigns.html.j2",
        frame,
        "Campaigns",
        "campaigns",
        rows=rows,
        link=lambda name: f"{frame.root}campaigns/{quote(name)}",
    )


def campaign_page(
    conn: Connection, frame: Frame, config: Config, campaign: Campaign, range_key: str, kept: KeptParts | None = None
) -> str:
    """One campaign's report; its numbers are `nudge report CAMPAIGN --format json`'s (`kept`: the
    settled occurrences' parts as counted before)."""
    source = live_parts if kept is None else functools.partial(kept.parts, now=frame.now)
    report = build_report(conn, [campaign], [campaign.campaign], None, config.metrics.revenue_property, source=source)
    view = campaign_view(conn, campaign, report, frame.zone, frame.now, range_key)
    return render("campaign.html.j2", frame, campaign.campaign, "campaign", view=view)


def export_page(
    conn: Connection,
    config: Config,
    workspace: str,
    rules: Sequence[Campaign],
    campaigns: Sequence[str],
    now: datetime,
    span: timedelta | None = None,
    window: str | None = None,
) -> str:
    """`nudge report --html`: the campaigns list and every campaign's section (the named ones, or
    all), each over its whole history, in one file."""
    frame = Frame(workspace, config.timezone, now, live=False)
    chosen = [c for c in rules if not campaigns or c.campaign in campaigns]
    report = build_report(conn, chosen, [c.campaign for c in chosen], span, config.metrics.revenue_property, window)
    views = [campaign_view(conn, c, report, frame.zone, now, "all") for c in chosen]
    rows = campaign_rows(conn, chosen, [] if campaigns else campaigns_in_ledger(conn), frame.zone, now)
    return render(
        "export.html.j2",
        frame,
        "Report",
        "export",
        rows=rows,
        views=views,
        link=lambda name: f"#campaign-{quote(name)}",
    )


def message_page(frame: Frame, title: str, text: str) -> str:
    return render("message.html.j2", frame, title, "message", text=text)
