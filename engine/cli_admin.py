"""Operator commands: `nudge coupons export`, `nudge tasks list|done`, `nudge report`."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click
from rich.table import Table

from .cli import Env, handles_errors, main, pass_env
from .output import make_console, write_json


@main.group()
def coupons() -> None:
    """Coupon codes issued by campaigns."""


@coupons.command(name="export")
@click.argument("campaigns", nargs=-1)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--all", "everything", is_flag=True, help="Include codes whose message failed or has not left yet.")
@pass_env
@handles_errors
def coupons_export(env: Env, campaigns: tuple[str, ...], output: Path | None, everything: bool) -> None:
    """CSV of coupon codes (code, customer, value, expiry) for the shop to import."""
    from .admin import export_coupons
    workspace = env.workspace(need_rules=False)
    store = env.store(workspace, create=False)
    with store.engine.connect() as conn:
        if output is None:
            export_coupons(conn, sys.stdout, campaigns, everything)
            return
        temporary = output.with_suffix(output.suffix + ".part")
        with temporary.open("w", newline="", encoding="utf-8") as handle:
            count = export_coupons(conn, handle, campaigns, everything)
        temporary.replace(output)      # never a half-written export
    click.echo(f"{count} coupons written to {output}", err=True)


@main.group(name="tasks")
def tasks_group() -> None:
    """Follow-up tasks for staff."""


@tasks_group.command(name="list")
@click.option("--queue", help="Only this queue.")
@click.option("--status", type=click.Choice(["open", "done", "all"]), default="open", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_env
@handles_errors
def tasks_list(env: Env, queue: str | None, status: str, fmt: str) -> None:
    """Tasks, soonest due first."""
    from .admin import list_tasks
    workspace = env.workspace(need_rules=False)
    store = env.store(workspace, create=False)
    with store.engine.connect() as conn:
        found = list_tasks(conn, queue, status)
    if fmt == "json":
        write_json(found, sys.stdout)
        return
    table = Table(title=f"{len(found)} {status if status != 'all' else ''} tasks".replace("  ", " "),
                  title_justify="left")
    for name in ("id", "queue", "due", "customer", "title", "status", "handoff"):
        table.add_column(name, no_wrap=name in ("id", "due", "customer"))
    for task in found:
        table.add_row(str(task["id"]), task["queue"], (task["due_at"] or "")[:16], task["customer_id"],
                      task["title"], task["status"], task["handoff"])
    make_console().print(table)


@tasks_group.command(name="done")
@click.argument("ids", nargs=-1, type=int, required=True)
@pass_env
@handles_errors
def tasks_done(env: Env, ids: tuple[int, ...]) -> None:
    """Mark tasks done."""
    from .admin import close_tasks
    workspace = env.workspace(need_rules=False)
    store = env.store(workspace, create=False)
    with store.engine.begin() as conn:
        close_tasks(conn, ids, datetime.now(timezone.utc))
    click.echo(f"done: {', '.join(map(str, ids))}")


@main.command(name="report")
@click.argument("campaigns", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_env
@handles_errors
def report_command(env: Env, campaigns: tuple[str, ...], fmt: str) -> None:
    """Per campaign: targeted, sent, failed, unknown, waiting and held out."""
    from .admin import delivery_counts
    workspace = env.workspace(need_rules=False)
    store = env.store(workspace, create=False)
    with store.engine.connect() as conn:
        counts = delivery_counts(conn, campaigns)
    if fmt == "json":
        write_json({"campaigns": [{"campaign": name, **row} for name, row in counts.items()]}, sys.stdout)
        return
    table = Table(title="Deliveries", title_justify="left")
    columns = ("targeted", "sent", "failed", "unknown", "pending", "held_out")
    table.add_column("campaign", no_wrap=True)
    for name in columns:
        table.add_column(name.replace("_", " ").replace("pending", "waiting"), justify="right")
    for name, row in counts.items():
        table.add_row(name, *(str(row[c] + (row["sending"] if c == "unknown" else 0)) for c in columns))
    make_console().print(table)
