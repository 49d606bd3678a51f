"""`nudge report`: deliveries by state, conversion and lift, journeys' funnels and the audience
history, as tables, as JSON, or as the dashboard's report pages in one HTML file (`--html`)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from engine.cli.common import Env, handles_errors, pass_env
from engine.cli.output import make_console, write_json


@click.command(name="report")
@click.argument("campaigns", nargs=-1)
@click.option(
    "--window",
    default=None,
    help="Override every campaign's goal window (default: each campaign's goal, 7d unless it says).",
)
@click.option(
    "--global", "programme", is_flag=True, help="The whole programme against the global control group instead."
)
@click.option("--since", default="30d", show_default=True, help="With --global: the purchase window up to now.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--html", "html", is_flag=True, help="The dashboard's report pages as one self-contained HTML file.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="With --html: the file.")
@pass_env
@handles_errors
def report_command(
    env: Env,
    campaigns: tuple[str, ...],
    window: str | None,
    programme: bool,
    since: str,
    fmt: str,
    html: bool,
    output: Path | None,
) -> None:
    """Per campaign: deliveries by state, then conversion on its goal, contacted vs holdout, per variant."""
    from engine.core.errors import Problem, UserInputError

    if programme:
        _programme_report(env, since, fmt)
        return
    if html != (output is not None):
        raise UserInputError([Problem("--html", None, None, "--html and -o FILE go together")])
    span = _duration("--window", window) if window else None
    try:  # the rules say each campaign's goal; a report still works while a rule file is broken
        workspace = env.workspace()
        rules = [loaded.campaign for loaded in workspace.campaigns.values()]
    except UserInputError:
        workspace, rules = env.workspace(need_rules=False), []
    store = env.store(workspace, create=False, read_only=True)
    if output is not None:
        _write_html(workspace, store, rules, campaigns, span, window, output)
        return
    from engine.reports.summary import build_report

    with store.engine.connect() as conn:
        found = build_report(conn, rules, campaigns, span, workspace.config.metrics.revenue_property, window)
    if fmt == "json":
        write_json(found.as_json(), sys.stdout)
        return
    from engine.cli.report_view import audience_table, funnel_table, report_tables

    console = make_console()
    report_tables(found.counts, found.lifts, console)
    for data in found.funnels:
        console.print(funnel_table(data))
    if found.audience:
        console.print(audience_table(found.audience, workspace.config.timezone))


def _duration(option: str, text: str):
    from engine.core.durations import parse_duration
    from engine.core.errors import Problem, UserInputError

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UserInputError([Problem(option, None, None, str(exc))]) from None


def _write_html(workspace, store, rules, campaigns, span, window, output: Path) -> None:
    from engine.reports.dashboard_html import export_page
    from engine.reports.preview import write_preview

    with store.engine.connect() as conn:
        now = datetime.now(timezone.utc)
        page = export_page(conn, workspace.config, str(workspace.root), rules, campaigns, now, span, window)
    write_preview(output, page)  # whole or not at all
    click.echo(f"report written to {output} (open it in a browser)")


def _programme_report(env: Env, since: str, fmt: str) -> None:
    from engine.core.errors import Problem, UserInputError
    from engine.reports.lift import programme_lift

    span = _duration("--since", since)
    workspace, store = env.config_and_store(create=False, read_only=True)
    share = workspace.config.limits.global_holdout
    if not share:
        raise UserInputError(
            [
                Problem(
                    str(workspace.root / "config.yaml"),
                    None,
                    None,
                    "no global control group: set limits.global_holdout (e.g. 5%) and let campaigns run first",
                )
            ]
        )
    with store.engine.connect() as conn:
        result = programme_lift(
            conn, share, datetime.now(timezone.utc), span, workspace.config.metrics.revenue_property
        ).as_json()
    if fmt == "json":
        write_json({"since": since, "global_holdout": share, **result}, sys.stdout)
    else:
        from engine.cli.report_view import report_tables

        heading = "The whole programme: everyone else against the global control group"
        report_tables({}, {"(all campaigns)": result}, make_console(), heading=heading)
