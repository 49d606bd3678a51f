"""Operator commands: `nudge coupons export`, `nudge tasks list|done`, suppressions, `nudge serve`,
`nudge deliveries` and `nudge customer` (`nudge report` is engine.cli.report)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from engine.cli.common import Env, handles_errors, known_topics, pass_env
from engine.cli.output import make_console, write_json


@click.group()
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
    from engine.reports.ledger import export_coupons

    _workspace, store = env.config_and_store(create=False, read_only=True)
    with store.engine.connect() as conn:
        if output is None:
            export_coupons(conn, sys.stdout, campaigns, everything)
            return
        temporary = output.with_suffix(output.suffix + ".part")
        with temporary.open("w", newline="", encoding="utf-8") as handle:
            count = export_coupons(conn, handle, campaigns, everything)
        temporary.replace(output)  # never a half-written export
    click.echo(f"{count} coupons written to {output}", err=True)


@click.group(name="tasks")
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
    from rich.table import Table

    from engine.reports.ledger import list_tasks

    _workspace, store = env.config_and_store(create=False, read_only=True)
    with store.engine.connect() as conn:
        found = list_tasks(conn, queue, status)
    if fmt == "json":
        write_json(found, sys.stdout)
        return
    table = Table(
        title=f"{len(found)} {status if status != 'all' else ''} tasks".replace("  ", " "), title_justify="left"
    )
    for name in ("id", "queue", "due", "customer", "title", "status", "handoff"):
        table.add_column(name, no_wrap=name in ("id", "due", "customer"))
    for task in found:
        table.add_row(
            str(task["id"]),
            task["queue"],
            (task["due_at"] or "")[:16],
            task["customer_id"],
            task["title"],
            task["status"],
            task["handoff"],
        )
    make_console().print(table)


@tasks_group.command(name="done")
@click.argument("ids", nargs=-1, type=int, required=True)
@pass_env
@handles_errors
def tasks_done(env: Env, ids: tuple[int, ...]) -> None:
    """Mark tasks done."""
    from engine.delivery.tasks import close_tasks

    _workspace, store = env.config_and_store(create=False)
    with store.engine.begin() as conn:
        close_tasks(conn, ids, datetime.now(timezone.utc))
    click.echo(f"done: {', '.join(map(str, ids))}")


@click.group(name="suppressions")
def suppressions_group() -> None:
    """Addresses never emailed again (unsubscribes, bounces, spam reports, manual)."""


@suppressions_group.command(name="list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_env
@handles_errors
def suppressions_list(env: Env, fmt: str) -> None:
    from rich.table import Table

    """Every suppressed address with its reason."""
    from engine.delivery.suppressions import list_suppressions

    _workspace, store = env.config_and_store(create=False, read_only=True)
    with store.engine.connect() as conn:
        found = list_suppressions(conn)
    if fmt == "json":
        write_json(found, sys.stdout)
        return
    table = Table(title=f"{len(found)} suppressed addresses", title_justify="left")
    for name in ("email", "reason", "source", "since"):
        table.add_column(name, no_wrap=True)
    for row in found:
        table.add_row(row["email"], row["reason"], row["source"] or "", row["created_at"].strftime("%Y-%m-%d %H:%M"))
    make_console().print(table)


@suppressions_group.command(name="add")
@click.argument("addresses", nargs=-1, required=True)
@click.option("--reason", default="manual", show_default=True)
@pass_env
@handles_errors
def suppressions_add(env: Env, addresses: tuple[str, ...], reason: str) -> None:
    """Never email these addresses again."""
    from engine.core.channels import ConsentSource
    from engine.delivery.suppressions import suppress

    _workspace, store = env.config_and_store(create=True)
    with store.engine.begin() as conn:
        now = datetime.now(timezone.utc)
        added = suppress(conn, addresses, reason, "operator", now, consent_source=ConsentSource.OPERATOR)
    click.echo(f"{added} added, {len(set(a.lower() for a in addresses)) - added} already suppressed")


@suppressions_group.command(name="remove")
@click.argument("addresses", nargs=-1, required=True)
@pass_env
@handles_errors
def suppressions_remove(env: Env, addresses: tuple[str, ...]) -> None:
    """Allow email to these addresses again (consent still applies)."""
    from engine.core.channels import ConsentSource
    from engine.delivery.suppressions import unsuppress

    _workspace, store = env.config_and_store(create=False)
    with store.engine.begin() as conn:
        removed = unsuppress(conn, addresses, ConsentSource.OPERATOR, datetime.now(timezone.utc))
    click.echo(f"{removed} removed")


@click.command(name="serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", default=8025, show_default=True, type=int)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1), help="Server processes.")
@click.option("--dev", is_flag=True, help="werkzeug's development server (one process) instead of gunicorn.")
@pass_env
@handles_errors
def serve_command(env: Env, host: str, port: int, log_format: str, workers: int, dev: bool) -> None:
    """Unsubscribe and preferences, SendGrid's and Twilio's webhooks, ingestion, the dashboard (/ui/)."""
    import os

    from engine.cli.logs import configure
    from engine.core.clock import utc_now
    from engine.messages.unsubscribe import secret_from
    from engine.web.dashboard import dashboard_from_config
    from engine.web.preferences import workspace_topics
    from engine.web.serve import App
    from engine.web.twilio_api import TwilioHooks

    configure(log_format)
    workspace, store = env.config_and_store(create=True)
    try:
        secret = secret_from(os.environ, workspace.root, required=workspace.config.email.connector != "outbox")
    except KeyError:
        from engine.core.errors import RuntimeFailure

        raise RuntimeFailure("NUDGE_SECRET must be set: it verifies the unsubscribe links in sent email") from None
    write_key = None
    if workspace.config.ingest is not None:
        name = workspace.config.ingest.write_key_env
        write_key = os.environ.get(name) or None
        if write_key is None:
            from engine.core.errors import RuntimeFailure

            raise RuntimeFailure(f"{name} must be set: config.yaml ingest.write_key_env names it as the write key")
    app = App(
        store,
        secret,
        workspace.config.email.sendgrid.webhook_public_key,
        lambda: datetime.now(timezone.utc),
        write_key=write_key,
        twilio=TwilioHooks.from_config(workspace.config.sms, os.environ),
        topics=known_topics(workspace.config),
        preferences=workspace_topics(workspace.root, workspace.config),
        dashboard=dashboard_from_config(store, workspace, os.environ, utc_now, write_key, host),
    )
    if dev:
        from engine.web.server import serve_dev

        serve_dev(app, host, port)
    else:
        from engine.web.server import serve

        serve(app, store, host, port, workers)


@click.command(name="deliveries")
@click.argument("campaign", required=False)
@click.option("--status", type=click.Choice(["pending", "sending", "sent", "failed", "unknown", "held_out", "skipped"]))
@click.option("--since", help="Only occurrences this recent, e.g. 24h or 7d.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many rows (newest first).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@pass_env
@handles_errors
def deliveries_command(
    env: Env, campaign: str | None, status: str | None, since: str | None, limit: int | None, fmt: str
) -> None:
    """The ledger: who got what, when, with status and failure reason (newest first)."""
    from engine.cli.output import write_csv
    from engine.cli.render import deliveries_table
    from engine.core.durations import parse_duration
    from engine.core.errors import Problem, UserInputError
    from engine.reports.timeline import DELIVERY_COLUMNS, campaigns_in_ledger, list_deliveries

    try:
        span = parse_duration(since) if since else None
    except ValueError as exc:
        raise UserInputError([Problem("--since", None, None, str(exc))]) from None
    workspace, store = env.config_and_store(create=False, read_only=True)
    with store.engine.connect() as conn:
        rows = list_deliveries(conn, campaign, status, span, datetime.now(timezone.utc), limit)
        known = campaigns_in_ledger(conn) if campaign and not rows else None
    if known is not None and not any(k == campaign or k.startswith(f"{campaign}/") for k in known):
        # A typo shows as an empty ledger otherwise; say what the ledger does hold.
        click.echo(f"note: the ledger has no campaign {campaign!r}; it has {', '.join(known) or 'none'}", err=True)
    if fmt == "json":
        write_json(rows, sys.stdout)
    elif fmt == "csv":
        write_csv(rows, DELIVERY_COLUMNS, sys.stdout)
    else:
        deliveries_table(rows, make_console(), workspace.config.timezone)


@click.command(name="customer")
@click.argument("customer_id")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_env
@handles_errors
def customer_command(env: Env, customer_id: str, fmt: str) -> None:
    """One customer's timeline for support staff: events, messages, coupons, tasks, journeys, suppressions."""
    from engine.cli.render import customer_view
    from engine.core.errors import UserInputError
    from engine.reports.timeline import customer_timeline

    try:  # journeys come from the rules; the timeline still works while a rule file is broken
        workspace = env.workspace()
        journeys = [loaded.campaign for loaded in workspace.campaigns.values() if loaded.campaign.steps]
    except UserInputError:
        workspace, journeys = env.workspace(need_rules=False), []
    store = env.store(workspace, create=False, read_only=True)
    with store.engine.connect() as conn:
        topics = known_topics(workspace.config).names
        found = customer_timeline(conn, customer_id, journeys, workspace.config.timezone, topics)
    if fmt == "json":
        write_json(found, sys.stdout)
    else:
        customer_view(found, make_console(), workspace.config.timezone)
