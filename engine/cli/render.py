"""Turning results into rich tables, trees and panels for people (JSON and CSV are in `output`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from engine.cli.output import json_default, local_time
from engine.cli.render_consent import consent_view
from engine.core.status import Exclusion

if TYPE_CHECKING:
    from engine.audience.explain import Node
    from engine.reports.dryrun import DryRun


EXCLUSION_HEADERS = {
    Exclusion.NO_CONSENT: "no\nconsent",
    Exclusion.COOLDOWN: "cool-\ndown",
    Exclusion.HOLDOUT: "hold-\nout",
    Exclusion.EXCLUSIVE: "excl-\nusive",
    Exclusion.FREQUENCY_CAP: "freq.\ncap",
    Exclusion.GLOBAL_HOLDOUT: "global\nholdout",
    Exclusion.WHEN_FALSE: "when\nfalse",
}


def dry_run_table(result: DryRun, console: Console, show_ids: int = 10, zone: str = "UTC") -> None:
    # Fits 80 columns with every exclusion but the global control group: no vertical rules, one
    # space between columns, two-line headers, campaign names never cut.
    table = Table(
        title=f"Dry run at {local_time(result.at, zone)}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
        pad_edge=False,
    )
    longest = max((len(p.campaign) for p in result.plans), default=8)
    table.add_column("campaign", min_width=min(longest, 40), overflow="fold")
    table.add_column("matched", justify="right")
    shown = [e for e in Exclusion if any(e in p.excluded for p in result.plans)]
    for name in shown:
        table.add_column(EXCLUSION_HEADERS[name], justify="right")
    table.add_column("targeted", justify="right", style="bold green")
    for plan in result.plans:
        table.add_row(
            plan.campaign,
            str(plan.matched),
            *(str(plan.excluded[n]) if n in plan.excluded else "–" for n in shown),  # –: does not apply here
            str(len(plan.targeted)),
        )
        for arm, count in sorted(plan.variants.items()):  # an A/B test's split of the targeted
            share = f"{100 * count / len(plan.targeted):.0f}%"
            table.add_row(f"  variant {arm} ({share})", "", *("" for _ in shown), str(count), style="dim")
    console.print(table)
    for plan in result.plans:
        if plan.skipped:
            console.print(
                f"[bold]{plan.campaign}[/]: {len(plan.skipped)} skipped (recorded; the journey goes on)",
                highlight=False,
            )
        if plan.targeted:
            ids = sorted(plan.targeted)
            more = f" … and {len(ids) - show_ids} more" if len(ids) > show_ids else ""
            console.print(f"[bold]{plan.campaign}[/] targets: {', '.join(ids[:show_ids])}{more}", highlight=False)
        if len(plan.locales) > 1:
            counts = " · ".join(f"{locale} {count}" for locale, count in sorted(plan.locales.items()))
            console.print(f"[bold]{plan.campaign}[/] by locale: {counts}", highlight=False)
    for campaign, samples in result.samples.items():
        for sample in samples:
            console.rule(
                f"{campaign} → {sample.customer_id}"
                + (f" · variant {sample.variant}" if sample.variant else "")
                + (f" · {sample.locale}" if sample.locale else "")
            )
            if sample.note:
                console.print(f"[yellow]note:[/] {sample.note}", highlight=False)
            for part, text in sample.parts.items():
                if part in ("variant", "locale") or (part == "body" and "text" in sample.parts):
                    continue  # variant and locale are in the heading; the terminal shows the text alternative
                console.print(f"[bold]{part}:[/]", highlight=False)
                console.print(text.strip(), markup=False, highlight=False)
            if sample.error:
                console.print(f"[red]render error:[/] {sample.error}", highlight=False)


def journey_lines(position: Any, console: Console, zone: str) -> None:
    """Where a customer is in a journey: a summary line, then each step of the current pass."""
    console.print(f"journey: {position.summary()}", highlight=False)
    for row in position.steps:
        detail = f" ({row.reason})" if row.reason else ""
        console.print(f"  {row.step}: {row.status}{detail} at {local_time(row.occurrence, zone)}", highlight=False)
    if position.next_due_at is not None:
        console.print(f"  next: {position.next_step} at {local_time(position.next_due_at, zone)}", highlight=False)


# This occurrence takes it (✔ due), an earlier one did (✔ answered), a later one may (…), none will (✘).
TRIGGER_MARKS = {
    "due": "[green]✔ due[/]",
    "answered": "[cyan]✔ answered[/]",
    "waiting": "[yellow]… waiting[/]",
    "unseen": "[yellow]… unseen[/]",
}


def trigger_tree(found: Any, console: Console, zone: str) -> None:
    """A triggered campaign: the window of the occurrence at this instant, then each trigger event."""
    from rich.markup import escape

    tree = Tree(escape(f"trigger: {found.rule()}"))
    tree.add(escape(f"window: {found.window_text(zone)}"))
    if found.older:
        tree.add(f"… {found.older} earlier {escape(found.event)} events not shown")
    for item in found.events:
        mark = TRIGGER_MARKS.get(item.state, f"[red]✘ {item.state}[/]")
        shown = escape(json.dumps(item.properties, default=json_default, ensure_ascii=False))
        branch = tree.add(f"{mark}  {escape(found.event)} at {local_time(item.occurred_at, zone)}  [dim]{shown}[/]")
        for line in item.describe(found.at, zone):
            branch.add(escape(line))
    console.print(tree, highlight=False)


def explain_tree(node: Node, console: Console, title: str) -> None:
    from rich.markup import escape

    def label(n: Node) -> str:
        # Rule text and values are the user's: `in: [demo-00001]` must not be read as markup.
        mark = "[green]✔ pass[/]" if n.passed else "[red]✘ fail[/]"
        shown = escape(json.dumps(n.value, default=json_default, ensure_ascii=False))
        value = "" if n.value is None else f"  [dim]value: {shown}[/]"
        return f"{mark}  {escape(n.label)}{value}"

    def add(parent: Tree, n: Node) -> None:
        branch = parent.add(label(n))
        for child in n.children:
            add(branch, child)

    tree = Tree(escape(title))
    add(tree, node)
    console.print(tree, highlight=False)


def delivery_table(reports: list[Any], console: Console, zone: str) -> None:
    """`nudge run`: what each occurrence did."""
    table = Table(title="Delivery", title_justify="left")
    table.add_column("campaign", no_wrap=True)
    table.add_column("occurrence", no_wrap=True)
    for name in ("matched", "held out", "sent", "failed", "unknown", "waiting"):
        table.add_column(name, justify="right")
    for r in reports:
        table.add_row(
            r.campaign,
            local_time(r.occurrence, zone),
            str(r.matched),
            str(r.held_out),
            str(r.counts.get("sent", 0)),
            str(r.counts.get("failed", 0)),
            str(r.counts.get("unknown", 0)),
            str(r.waiting),
        )
    console.print(table)
    for r in reports:
        if r.note:
            console.print(f"{r.campaign}: {r.note}", highlight=False)


def _top(values: list[dict[str, Any]]) -> str:
    return ", ".join(f"{v['value']} ({v['count']})" for v in values)


def catalog_tables(data: dict[str, Any], console: Console, zone: str) -> None:
    """`nudge catalog`: event types, then each type's properties, then customer fields."""
    kinds = Table(title=f"Event types ({data['customers']:,} customers)", title_justify="left", box=box.SIMPLE_HEAD)
    for name, justify in (("type", "left"), ("events", "right"), ("first", "left"), ("last", "left")):
        kinds.add_column(name, justify=justify)  # type: ignore[arg-type]
    for kind in data["event_types"]:
        first = local_time(datetime.fromisoformat(kind["first"]), zone) if kind["first"] else "–"
        last = local_time(datetime.fromisoformat(kind["last"]), zone) if kind["last"] else "–"
        kinds.add_row(kind["type"], f"{kind['count']:,}", first, last)
    console.print(kinds)
    props = Table(title="Event properties (recent events)", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("type.property", "types", "filled", "most frequent"):
        props.add_column(name, overflow="fold")
    for kind in data["event_types"]:
        for key, stats in kind["properties"].items():
            props.add_row(
                f"{kind['type']}.{key}",
                ", ".join(stats["types"]),
                f"{stats['fill_rate']:.0%}",
                _top(stats["top_values"]),
            )
    console.print(props)
    people = Table(title="Customer fields and attributes", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("field", "filled", "most frequent"):
        people.add_column(name, overflow="fold")
    for key, stats in data["customer_fields"].items():
        people.add_row(key, f"{stats['fill_rate']:.0%}", _top(stats["top_values"]))
    for key, stats in data["attributes"].items():
        people.add_row(f"attributes.{key}", f"{stats['fill_rate']:.0%}", _top(stats["top_values"]))
    console.print(people)
    stock = data["products"]
    title = f"Products ({stock['count']:,}, {stock['in_stock']:,} in stock)"
    shelf = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name, justify in (("category", "left"), ("products", "right"), ("in stock", "right")):
        shelf.add_column(name, justify=justify)  # type: ignore[arg-type]
    for group in stock["categories"]:
        shelf.add_row(group["category"] or "(none)", f"{group['products']:,}", f"{group['in_stock']:,}")
    console.print(shelf)


def diff_table(changes: list[dict[str, Any]], base: str, console: Console) -> None:
    """`nudge diff`: one row per changed campaign, then what changed and who moves in and out."""
    if not changes:
        console.print(f"No campaign changed since {base}.")
        return
    table = Table(title=f"Audience changes since {base}", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("campaign", "change", "matched", "targeted", "audience"):
        table.add_column(name, justify="left" if name in ("campaign", "change") else "right")
    for c in changes:
        table.add_row(
            c["campaign"],
            c["change"],
            f"{c['base']['matched']} → {c['head']['matched']}",
            f"{c['base']['targeted']} → {c['head']['targeted']}",
            f"+{c['added']} −{c['removed']}" if c["audience_changed"] else "unchanged",
        )
    console.print(table)
    for c in changes:
        if c["because"]:
            console.print(f"{c['campaign']}: {', '.join(c['because'])} changed", highlight=False)
        for sign, key in (("+", "added"), ("−", "removed")):
            if c[f"{key}_sample"]:
                more = f" … and {c[key] - len(c[key + '_sample'])} more" if c[key] > len(c[key + "_sample"]) else ""
                console.print(f"{c['campaign']} {sign} {', '.join(c[key + '_sample'])}{more}", highlight=False)


def models_table(fits: list[dict[str, Any]], zone: str) -> Table:
    """The stored lifetime-value fits: parameters, log-likelihood, data window, size."""
    table = Table(title="Lifetime-value models (latest fit)", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("model", "parameters", "log-likelihood", "customers", "data", "fitted at"):
        table.add_column(name, overflow="fold")
    for fit in fits:
        params = ", ".join(f"{k}={v:.4g}" for k, v in fit["params"].items())
        first = local_time(datetime.fromisoformat(fit["data_from"]), zone)[:10] if fit["data_from"] else "?"
        until = local_time(datetime.fromisoformat(fit["data_until"]), zone)[:10]
        likelihood = "–" if fit["log_likelihood"] is None else f"{fit['log_likelihood']:,.1f}"
        table.add_row(
            fit["model"],
            params,
            likelihood,
            f"{fit['customers']:,}",
            f"{first} … {until}",
            local_time(datetime.fromisoformat(fit["fitted_at"]), zone),
        )
    return table


def _when(value: str | None, zone: str) -> str:
    return local_time(datetime.fromisoformat(value), zone) if value else "–"


def deliveries_table(rows: list[dict[str, Any]], console: Console, zone: str) -> None:
    """`nudge deliveries`."""
    table = Table(title=f"Deliveries ({len(rows):,})", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("id", "campaign", "customer", "occurrence", "via", "status", "reason"):
        table.add_column(name, overflow="fold", justify="right" if name == "id" else "left")
    for row in rows:
        status = row["status"] + (f" ({row['variant']})" if row.get("variant") else "")
        channel = row.get("channel") or "email"
        table.add_row(
            str(row["id"]),
            row["campaign"],
            row["customer_id"],
            _when(row["occurrence"], zone),
            "—" if channel == "none" else channel,  # a row of coupons and tasks only
            status,
            row["reason"] or "",
        )
    console.print(table)


def customer_view(data: dict[str, Any], console: Console, zone: str) -> None:
    """`nudge customer ID`: profile, then messages, coupons, tasks, suppressions and events."""
    person = data["customer"]
    name = " ".join(filter(None, [person.get("first_name"), person.get("last_name")])) or "(no name)"
    consent = "opted in" if person.get("email_opt_in") else "not opted in"
    if person.get("unsubscribed_at"):
        consent = f"unsubscribed {_when(person['unsubscribed_at'], zone)}"
    console.print(
        f"[bold]{person['id']}[/] · {name} · {person.get('email') or 'no email'} · {consent}", highlight=False
    )
    for suppression in data["suppressions"]:
        console.print(
            f"suppressed: {suppression['reason']} ({suppression['source'] or 'manual'}) "
            f"{_when(suppression['created_at'], zone)}",
            highlight=False,
        )
    for journey in data.get("journeys", []):
        due = f" at {_when(journey['next_due_at'], zone)}" if journey["next_due_at"] else ""
        console.print(f"journey {journey['journey']}: {journey['summary']}{due}", highlight=False)
    consent_view(data, console, zone)
    deliveries_table(data["messages"], console, zone)
    if data["coupons"]:
        coupons_table = Table(title="Coupons", title_justify="left", box=box.SIMPLE_HEAD)
        for column in ("code", "campaign", "expires"):
            coupons_table.add_column(column)
        for coupon in data["coupons"]:
            coupons_table.add_row(coupon["code"], coupon["campaign"], _when(coupon["expires_at"], zone))
        console.print(coupons_table)
    if data["tasks"]:
        tasks_table = Table(title="Tasks", title_justify="left", box=box.SIMPLE_HEAD)
        for column in ("id", "queue", "title", "status", "due"):
            tasks_table.add_column(column, overflow="fold")
        for task in data["tasks"]:
            tasks_table.add_row(
                str(task["id"]), task["queue"], task["title"], task["status"], _when(task["due_at"], zone)
            )
        console.print(tasks_table)
    events_table = Table(title=f"Events (latest {len(data['events'])})", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("when", "type", "properties"):
        events_table.add_column(column, overflow="fold")
    for event in data["events"]:
        shown = ", ".join(f"{k}={v}" for k, v in event["properties"].items())
        events_table.add_row(_when(event["occurred_at"], zone), event["type"], shown)
    console.print(events_table)
