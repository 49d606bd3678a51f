"""Read-only commands: `nudge dry-run` and `nudge explain`. They never write to the store."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from engine.cli.common import Env, handles_errors, parse_at, pass_env
from engine.cli.output import make_console
from engine.cli.progress import progress
from engine.core.errors import Problem, UserInputError


@click.command(name="dry-run")
@click.argument("campaigns", nargs=-1)
@click.option("--at", "at_text", help="Evaluate at this ISO 8601 instant instead of now (replays history).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--render", type=click.IntRange(min=0), default=0, help="Render N sample messages per campaign.")
@pass_env
@handles_errors
def dry_run_command(env: Env, campaigns: tuple[str, ...], at_text: str | None, fmt: str, render: int) -> None:
    """Who would be targeted, and why the others were not. Writes nothing."""
    workspace = env.workspace()  # first: it loads most of what the planner needs (see Env.workspace)
    from engine.audience.planner import Planner
    from engine.cli.output import dry_run_csv, write_json
    from engine.reports.dryrun import dry_run

    at = parse_at(at_text, workspace.config.timezone)
    chosen = workspace.select(campaigns)
    store = env.store(workspace, create=False, read_only=True)
    with store.engine.connect() as conn:
        if fmt == "csv":
            planner = Planner(conn=conn, config=workspace.config, segments=workspace.segments, at=at)
            rows = (
                (c.campaign, row.customer_id, row.outcome) for c in chosen for row in planner.classify(c, contact=False)
            )
            dry_run_csv(rows, sys.stdout)
            conn.rollback()
            return
        result = dry_run(conn, workspace, chosen, at, render=render)
        conn.rollback()
    if fmt == "json":
        write_json(result.as_json(), sys.stdout)
    else:
        from engine.cli.render import dry_run_table  # rich, only for people

        dry_run_table(result, make_console(), zone=workspace.config.timezone)
    failures = result.render_failures()
    for name, failed in failures.items():
        click.echo(f"error: {name}: {failed} of {len(result.samples[name])} sample messages failed to render", err=True)
    if failures:
        sys.exit(1)


@click.command(name="explain")
@click.argument("customer_id")
@click.option("--campaign", "campaign_name", required=True, help="The campaign whose audience to explain.")
@click.option("--at", "at_text", help="Evaluate at this ISO 8601 instant instead of now.")
@click.option("--format", "fmt", type=click.Choice(["tree", "json"]), default="tree", show_default=True)
@pass_env
@handles_errors
def explain_command(env: Env, customer_id: str, campaign_name: str, at_text: str | None, fmt: str) -> None:
    """Each condition of a campaign's audience with this customer's value and pass/fail."""
    from engine.audience.explain import explain
    from engine.audience.journey import journey_state
    from engine.audience.planner import Planner
    from engine.audience.reasons import reason, refused_because
    from engine.cli.output import local_time, write_json

    workspace = env.workspace()
    if campaign_name not in workspace.campaigns:
        known = ", ".join(sorted(workspace.campaigns)) or "none"
        raise UserInputError([Problem("--campaign", None, None, f"unknown campaign {campaign_name!r}; known: {known}")])
    campaign = workspace.campaigns[campaign_name].campaign
    at = parse_at(at_text, workspace.config.timezone)
    store = env.store(workspace, create=False, read_only=True)
    # A journey is entered through its first step: that is whose outcome a customer has now.
    entry = workspace.select([campaign_name])[0]
    with store.engine.connect() as conn:
        planner = Planner(conn=conn, config=workspace.config, segments=workspace.segments, at=at)
        tree = explain(conn, campaign, planner.context(), customer_id)
        found = next(iter(planner.classify(entry, only=customer_id)), None)
        outcome = found.outcome if found is not None else "not_in_audience"
        why = reason(conn, entry, workspace.config, customer_id, outcome, at)
        if found is not None and found.refused:  # targeted, but not on every channel of the campaign
            refused = [
                f"not by {c}: {refused_because(conn, customer_id, c, workspace.config, text)}"
                for c, text in found.refused
            ]
            why = "; ".join([f"by {', '.join(found.channels)}", *refused])
        position = journey_state(conn, campaign, workspace.config.timezone, at, customer_id) if campaign.steps else None
        fired = _trigger(conn, campaign, at, customer_id, workspace.config.timezone)
        conn.rollback()
    if fired is not None and outcome == "not_in_audience" and tree.passed:
        outcome, why = "no_trigger_due", fired.summary(workspace.config.timezone)
    if fmt == "json":
        data = {
            "customer": customer_id,
            "campaign": campaign_name,
            "at": at.isoformat(),
            "outcome": outcome,
            "reason": why,
            "audience": tree.as_json(),
        }
        if found is not None and entry.channels:
            data["channels"] = {str(c): c in found.channels for c in entry.channels}
        if position is not None:
            data["journey"] = position.as_json()
        if fired is not None:
            data["trigger"] = fired.as_json()
        write_json(data, sys.stdout)
        return
    title = f"{customer_id} in {campaign_name} at {local_time(at, workspace.config.timezone)}"
    from rich.markup import escape

    verdict = f"[bold]{outcome}[/]" + (f" — {escape(why)}" if why else "")
    _print_explain(title, tree, fired, position, verdict, workspace)


def _print_explain(title: str, tree: Any, fired: Any, position: Any, verdict: str, workspace: Any) -> None:
    """explain for a person: the audience tree, the trigger events or the journey, the outcome."""
    from engine.cli.render import explain_tree, journey_lines, trigger_tree

    console, zone = make_console(), workspace.config.timezone
    explain_tree(tree, console, title)
    if fired is not None:
        trigger_tree(fired, console, zone)
    if position is None:
        console.print(f"outcome: {verdict}", highlight=False)
        return
    journey_lines(position, console, zone)
    inside = position.entered_at is not None and not position.finished and position.exited_at is None
    if inside:  # the entry step's audience excludes whoever is in the journey already
        console.print("entry now: no — already in the journey", highlight=False)
    else:
        console.print(f"entry now: {verdict}", highlight=False)


def _trigger(conn: Any, campaign: Any, at: datetime, customer_id: str, zone: str) -> Any:
    """A triggered campaign's trigger events for the customer at this instant (None: not triggered)."""
    if campaign.trigger is None:
        return None
    from engine.audience.trigger_explain import explain_trigger

    return explain_trigger(conn, campaign, at, customer_id, zone)


@click.command(name="preview")
@click.argument("campaigns", nargs=-1)
@click.option("--at", "at_text", help="Evaluate at this ISO 8601 instant instead of now.")
@click.option("--samples", type=click.IntRange(min=0, max=50), default=3, show_default=True, help="Customers shown.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("preview.html"), show_default=True
)
@click.option("--locale", help="Render every sample in this locale (e.g. zh-CN) instead of each customer's own.")
@pass_env
@handles_errors
def preview_command(
    env: Env, campaigns: tuple[str, ...], at_text: str | None, samples: int, output: Path, locale: str | None
) -> None:
    """A self-contained HTML page of the dry run: funnels and the emails as customers will see them."""
    from engine.reports.dryrun import dry_run
    from engine.reports.preview import render_preview, write_preview
    from engine.rules.locale_config import known_locale

    if locale is not None:
        try:
            known_locale(locale)
        except ValueError as exc:
            raise UserInputError([Problem("--locale", None, None, str(exc))]) from None
    workspace = env.workspace()
    at = parse_at(at_text, workspace.config.timezone)
    chosen = workspace.select(campaigns)
    store = env.store(workspace, create=False, read_only=True)
    with store.engine.connect() as conn:
        with progress("planning and rendering"):
            result = dry_run(conn, workspace, chosen, at, render=samples, locale=locale)
        conn.rollback()
    write_preview(output, render_preview(result, chosen, workspace.config.timezone, str(workspace.root)))
    click.echo(f"preview of {len(chosen)} campaigns written to {output} (open it in a browser)")
    failures = result.render_failures()
    for name, failed in failures.items():
        click.echo(f"error: {name}: {failed} of {len(result.samples[name])} sample messages failed to render", err=True)
    if failures:
        sys.exit(1)


@click.command(name="catalog")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_env
@handles_errors
def catalog_command(env: Env, fmt: str) -> None:
    """What the store holds: event types, their properties and values, customer fields and attributes."""
    from engine.audience.catalog import build_catalog
    from engine.cli.output import write_json
    from engine.cli.render import catalog_tables

    workspace, store = env.config_and_store(create=False, read_only=True)
    with store.engine.connect() as conn:
        catalog = build_catalog(conn)
        conn.rollback()
    if fmt == "json":
        write_json(catalog.as_json(), sys.stdout)
    else:
        catalog_tables(catalog.as_json(), make_console(), workspace.config.timezone)


@click.command(name="diff")
@click.option("--base", "base_rev", default="HEAD", show_default=True, help="The git revision to compare with.")
@click.option("--at", "at_text", help="Plan both versions at this ISO 8601 instant (default: now).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_env
@handles_errors
def diff_command(env: Env, base_rev: str, at_text: str | None, fmt: str) -> None:
    """For each campaign changed since --base: the audience at both versions, who is added and removed."""
    from engine.cli.output import write_json
    from engine.cli.render import diff_table
    from engine.reports.diff import diff_campaigns

    workspace = env.workspace()
    at = parse_at(at_text, workspace.config.timezone)
    store = env.store(workspace, create=False, read_only=True)
    with store.engine.connect() as conn:
        changes = diff_campaigns(conn, workspace, base_rev, at)
        conn.rollback()
    if fmt == "json":
        write_json({"base": base_rev, "at": at.isoformat(), "campaigns": [c.as_json() for c in changes]}, sys.stdout)
    else:
        diff_table([c.as_json() for c in changes], base_rev, make_console())
