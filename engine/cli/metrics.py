"""`nudge metrics show|summary|refresh`."""

from __future__ import annotations

import sys

import click

from engine.cli.common import Env, handles_errors, parse_at, pass_env
from engine.cli.output import make_console, write_json
from engine.core.errors import RuntimeFailure


def _context(conn, workspace, at):
    from engine.audience.compiler import EvalContext, store_timezones

    return EvalContext(
        at=at,
        timezone=workspace.config.timezone,
        dialect=conn.dialect.name,
        timezones=store_timezones(conn),
        segments=workspace.segments,
        metrics=workspace.config.metrics,
    )


@click.group(name="metrics")
def metrics_group() -> None:
    """Computed customer metrics: RFM, value tiers, lifecycle, churn signals, predicted value."""


@metrics_group.command(name="show")
@click.argument("customer_id")
@click.option("--at", "at_text", help="As of this ISO 8601 instant (default: now).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_env
@handles_errors
def metrics_show(env: Env, customer_id: str, at_text: str | None, fmt: str) -> None:
    """Every metric of one customer."""
    from rich.table import Table

    from engine.audience.explain import require_customer
    from engine.reports.metrics_summary import customer_metrics_of

    workspace = env.workspace(need_rules=False)
    at = parse_at(at_text, workspace.config.timezone)
    store = env.store(workspace, create=False, read_only=True)
    with store.engine.connect() as conn:
        require_customer(conn, customer_id)
        found = customer_metrics_of(conn, _context(conn, workspace, at), customer_id)
    if fmt == "json":
        write_json({"customer": customer_id, "at": at.isoformat(), "metrics": found}, sys.stdout)
        return
    table = Table(title=f"{customer_id} at {at.isoformat()}", title_justify="left")
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right")
    for name, value in found.items():
        shown = "–" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
        table.add_row(name, shown)
    make_console().print(table)


@metrics_group.command(name="summary")
@click.option("--at", "at_text", help="As of this ISO 8601 instant (default: now).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_env
@handles_errors
def metrics_summary(env: Env, at_text: str | None, fmt: str) -> None:
    """Customers per lifecycle stage, RFM segment and value tier."""
    from rich.table import Table

    from engine.reports.metrics_summary import distribution, latest_fits

    workspace = env.workspace(need_rules=False)
    at = parse_at(at_text, workspace.config.timezone)
    store = env.store(workspace, create=False, read_only=True)
    with store.engine.connect() as conn:
        found = distribution(conn, _context(conn, workspace, at))
        fits = latest_fits(conn)
    if fmt == "json":
        write_json({"at": at.isoformat(), **found, "models": fits}, sys.stdout)
        return
    console = make_console()
    for name, counts in found.items():
        total = sum(counts.values()) or 1
        table = Table(title=name, title_justify="left")
        table.add_column("value", no_wrap=True)
        table.add_column("customers", justify="right")
        table.add_column("share", justify="right")
        for value, count in counts.items():
            table.add_row(str(value), f"{count:,}", f"{100 * count / total:.1f}%")
        console.print(table)
    if fits:
        from engine.cli.render import models_table

        console.print(models_table(fits, workspace.config.timezone))
    else:
        console.print("No lifetime-value model fitted yet: run `nudge metrics refresh` (the daemon does daily).")


@metrics_group.command(name="refresh")
@click.option("--at", "at_text", help="Fit on history up to this instant (default: now).")
@pass_env
@handles_errors
def metrics_refresh(env: Env, at_text: str | None) -> None:
    """Fit BG/NBD and Gamma-Gamma on the store's purchases; store p_alive and predicted 12-month value."""
    from engine.audience.clv import refresh

    workspace = env.workspace(need_rules=False)
    at = parse_at(at_text, workspace.config.timezone)
    store = env.store(workspace, create=True)
    try:
        fitted = refresh(store, at, workspace.config.metrics.revenue_property)
    except ValueError as exc:
        raise RuntimeFailure(str(exc)) from None
    model, spend = fitted["bgnbd"], fitted["gamma_gamma"]
    click.echo(
        f"fitted on {fitted['customers']:,} customers with purchases: "
        f"BG/NBD r={model['r']:.3f} alpha={model['alpha']:.2f} a={model['a']:.3f} b={model['b']:.3f}; "
        f"Gamma-Gamma p={spend['p']:.2f} q={spend['q']:.2f} v={spend['v']:.2f}"
    )
