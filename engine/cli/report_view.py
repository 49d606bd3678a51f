"""`nudge report` for people: deliveries by state, then one block per campaign (conversion on its
goal, contacted against the holdout, the difference with its interval, revenue, coupons), A/B
variants with their intervals, and a journey's funnel. Readable at 80 columns: no cell is cut,
and every number is the one `--format json` gives."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from engine.reports.words import arm_words, difference_words, percent


def _table(title: str | None = None, gap: int = 1) -> Table:
    # No vertical rules; columns `gap` + 1 spaces apart (gap 0: eight columns fit 80).
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, gap, 0, 0), pad_edge=False)


# The ledger's channel as the table shows it: "none" is a row of coupons and tasks only.
_VIA = {"email": "email", "sms": "sms", "webhook": "hook", "none": "—"}


def delivery_table(counts: dict[str, dict[str, Any]]) -> Group:
    """Deliveries by state, one row per campaign (a journey's steps as CAMPAIGN/STEP) with the
    channel it went by; a campaign on several channels gets a line per channel below it
    (`targeted` counts customers, the rest messages). `unknown` deliveries a provider confirmed
    later are a line below the table, so it fits 80 columns."""
    table = _table("Deliveries", gap=0)
    columns = ("targeted", "sent", "failed", "unknown", "pending", "held_out")
    labels = {"pending": "waiting", "held_out": "held\nout"}
    longest = max((len(name) for name in counts), default=8)
    table.add_column("campaign", min_width=min(longest, 30), overflow="fold")  # a step's name stays whole
    table.add_column("via")
    for name in columns:
        table.add_column(labels.get(name, name), justify="right")
    for name, row in counts.items():
        channels = sorted(row.get("channels", {}))
        via = _VIA.get(channels[0], channels[0]) if len(channels) == 1 else "all"
        table.add_row(name, via, *(_cell(row, c) for c in columns))
        if len(channels) > 1:
            for channel in channels:
                table.add_row(
                    "", _VIA.get(channel, channel), "", *(_cell(row["channels"][channel], c) for c in columns[1:])
                )
    resolved = [f"{name} {row['resolved']:,}" for name, row in counts.items() if row.get("resolved")]
    notes = (
        [Text("unknown, then confirmed sent by the provider: " + ", ".join(resolved), style="dim")] if resolved else []
    )
    return Group(table, *notes)


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column, 0) + (row.get("sending", 0) if column == "unknown" else 0)
    return f"{value:,}"


def measurement_block(name: str, data: dict[str, Any]) -> Group:
    """One campaign's conversion on its goal, contacted vs holdout, the difference, coupons."""
    goal = data["goal"]
    heading = Text.assemble((name, "bold"), f" — goal: {goal['event']} within {goal['within']}")
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim", no_wrap=True)
    facts.add_column(overflow="fold")
    facts.add_row("contacted", arm_words(data["contacted"]))
    facts.add_row("holdout", arm_words(data["holdout"]))
    facts.add_row("difference", difference_words(data["lift"]))
    used = data["coupons"]
    if used["issued"]:
        facts.add_row("coupons", f"{used['redeemed']:,} of {used['issued']:,} redeemed")
    return Group(heading, Padding(facts, (0, 0, 1, 2)))


def report_tables(
    counts: dict[str, dict[str, int]],
    lifts: dict[str, dict[str, Any]],
    console: Console,
    heading: str = "Conversion on each campaign's goal, contacted vs holdout",
) -> None:
    """`nudge report`: deliveries by state, then each campaign's conversion, then A/B variants."""
    if counts:
        console.print(delivery_table(counts))
    if lifts:
        console.print(Text(heading, style="italic"))
        console.print()
    for name, data in lifts.items():
        console.print(measurement_block(name, data))
    for name, data in lifts.items():
        if data["variants"]:
            console.print(variants_table(name, data))
            console.print(Text(f"{name}: {data['verdict']}"))
            console.print()


def funnel_table(data: dict[str, Any]) -> Group:
    """A journey's passes: entered → each step → left on the exit event / finished / on the way."""
    title = f"{data['journey']}: journey funnel ({data['entered']:,} entered, {data['held_out']:,} held out at entry)"
    table = _table()  # the title above it, not over it: a table's title wraps at the table's width
    for column in ("step", "reached", "sent", "skipped", "failed", "waiting"):
        table.add_column(column, justify="left" if column == "step" else "right")
    reasons = []
    for step in data["steps"]:
        if step["skipped_by"]:
            why = ", ".join(f"{n:,} {reason}" for reason, n in sorted(step["skipped_by"].items()))
            reasons.append(Text(f"  {step['step']} skipped: {why}"))
        table.add_row(
            step["step"],
            f"{step['reached']:,}",
            f"{step.get('sent', 0) + step.get('unknown', 0):,}",  # unknown: it left, no answer came back
            f"{step.get('skipped', 0):,}",
            f"{step.get('failed', 0):,}",
            f"{step.get('pending', 0) + step.get('sending', 0):,}",
        )
    exited = data["exited"]
    if exited["event"]:
        table.add_row(f"left on {exited['event']}", f"{exited['passes']:,}", "", "", "", "")
    table.add_row("finished", f"{data['finished']:,}", "", "", "", "")
    table.add_row("on the way", f"{data['in_progress']:,}", "", "", "", "")
    return Group(Text(title, style="italic"), table, *reasons, Text(""))


def variants_table(name: str, data: dict[str, Any]) -> Table:
    """An A/B test's arms with 95% intervals and the holdout beside them (the verdict follows)."""
    table = _table(f"{name}: A/B variants on the goal")
    for column in ("variant", "customers", "converted", "conversion", "95% interval"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for arm in data["variants"]:
        low, high = arm["ci95"]
        interval = "–" if low is None else f"{100 * low:.1f}% … {100 * high:.1f}%"
        counts = (f"{arm['customers']:,}", f"{arm['converted']:,}")
        table.add_row(arm["name"], *counts, percent(arm["conversion"]), interval)
    holdout = data["holdout"]
    table.add_row(
        "(holdout)", f"{holdout['customers']:,}", f"{holdout['converted']:,}", percent(holdout["conversion"]), ""
    )
    return table


def audience_table(audience: dict[str, list[dict[str, Any]]], zone: str) -> Group:
    """Each campaign's audience at its last planned occurrence, against the one before (the
    dashboard charts every occurrence); exclusions one by one are in `--format json`."""
    from engine.cli.output import local_time

    table = _table("Audience at the last occurrence", gap=1)
    longest = max((len(name) for name in audience), default=8)
    table.add_column("campaign", min_width=min(longest, 30), overflow="fold")
    for column in ("last run", "matched", "targeted", "change", "runs", "plan s"):
        table.add_column(column, justify="left" if column == "last run" else "right")
    for name, rows in audience.items():
        last = rows[-1]
        change = "" if len(rows) < 2 else f"{last['targeted'] - rows[-2]['targeted']:+,}"
        seconds = last["planning_seconds"]
        table.add_row(
            name,
            local_time(datetime.fromisoformat(last["occurrence"]), zone)[:10],
            f"{last['matched']:,}",
            f"{last['targeted']:,}",
            change,
            f"{len(rows):,}",
            "" if seconds is None else f"{seconds:.2f}",
        )
    note = Text("change: targeted against the occurrence before", style="dim")
    return Group(table, note, Text(""))
