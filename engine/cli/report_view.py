"""`nudge report` as tables: deliveries by state, conversion against the holdout, A/B variants
with their intervals, and a journey's funnel."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _difference(lift: dict[str, Any] | None) -> str:
    if lift is None:
        return "no holdout"
    low, high = lift["ci95"]
    star = " *" if lift["significant"] else ""
    return f"{100 * lift['difference']:+.1f} pp ({100 * low:+.1f} … {100 * high:+.1f}){star}"


def _money(contacted: dict[str, Any], holdout: dict[str, Any]) -> str:
    if contacted["revenue_per_customer"] is None:
        return "–"
    other = holdout["revenue_per_customer"]
    return f"{contacted['revenue_per_customer']:.2f} vs " + ("–" if other is None else f"{other:.2f}")


def report_tables(counts: dict[str, dict[str, int]], lifts: dict[str, dict[str, Any]], console: Console) -> None:
    """`nudge report`: deliveries by state, then conversion contacted vs holdout."""
    table = Table(title="Deliveries", title_justify="left")
    columns = ("targeted", "sent", "failed", "unknown", "pending", "held_out", "resolved")
    table.add_column("campaign", no_wrap=True)
    for name in columns:
        label = {"pending": "waiting", "held_out": "held out", "resolved": "unknown→sent"}.get(name, name)
        table.add_column(label, justify="right")
    for name, row in counts.items():
        table.add_row(name, *(str(row[c] + (row["sending"] if c == "unknown" else 0)) for c in columns))
    console.print(table)
    results = Table(title="Conversion on each campaign's goal, contacted vs holdout", title_justify="left")
    for name in ("campaign", "goal", "contacted", "holdout", "difference (95% CI)", "revenue/customer", "coupons"):
        results.add_column(name, justify="left" if name == "campaign" else "right", no_wrap=True)
    for name, data in lifts.items():
        contacted, holdout, used = data["contacted"], data["holdout"], data["coupons"]
        goal = data["goal"]
        results.add_row(
            name,
            f"{goal['event']} within {goal['within']}",
            f"{_pct(contacted['conversion'])} of {contacted['customers']}",
            f"{_pct(holdout['conversion'])} of {holdout['customers']}",
            _difference(data["lift"]),
            _money(contacted, holdout),
            "–" if not used["issued"] else f"{used['redeemed']} of {used['issued']}",
        )
    console.print(results)
    console.print("* the 95% interval excludes zero", style="dim")
    for name, data in lifts.items():
        if data["variants"]:
            console.print(variants_table(name, data))


def funnel_table(data: dict[str, Any]) -> Table:
    """A journey's passes: entered → each step → left on the exit event / finished / on the way."""
    title = f"{data['journey']}: journey funnel ({data['entered']:,} entered, {data['held_out']:,} held out at entry)"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("step", "reached", "sent", "skipped", "failed", "waiting"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for step in data["steps"]:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(step["skipped_by"].items()))
        waiting = step.get("pending", 0) + step.get("sending", 0)
        table.add_row(
            step["step"],
            f"{step['reached']:,}",
            f"{step.get('sent', 0) + step.get('unknown', 0):,}",  # unknown: it left, no answer came back
            f"{step.get('skipped', 0):,}" + (f" ({why})" if why else ""),
            f"{step.get('failed', 0):,}",
            f"{waiting:,}",
        )
    exited = data["exited"]
    if exited["event"]:
        table.add_row(f"left on {exited['event']}", f"{exited['passes']:,}", "", "", "", "")
    table.add_row("finished", f"{data['finished']:,}", "", "", "", "")
    table.add_row("on the way", f"{data['in_progress']:,}", "", "", "", "")
    return table


def variants_table(name: str, data: dict[str, Any]) -> Table:
    """An A/B test's arms with 95% intervals, the holdout beside them, and the verdict."""
    table = Table(title=f"{name}: variants — {data['verdict']}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("variant", "customers", "converted", "conversion", "95% interval"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for arm in data["variants"]:
        low, high = arm["ci95"]
        interval = "–" if low is None else f"{100 * low:.1f}%…{100 * high:.1f}%"
        table.add_row(arm["name"], f"{arm['customers']:,}", f"{arm['converted']:,}", _pct(arm["conversion"]), interval)
    holdout = data["holdout"]
    table.add_row(
        "(holdout)", f"{holdout['customers']:,}", f"{holdout['converted']:,}", _pct(holdout["conversion"]), ""
    )
    return table
