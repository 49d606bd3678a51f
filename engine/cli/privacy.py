"""A customer's data rights: `nudge export-customer ID` and `nudge forget ID`."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from engine.cli.common import Env, handles_errors, pass_env
from engine.cli.output import write_json


@click.command(name="export-customer")
@click.argument("customer_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@pass_env
@handles_errors
def export_customer_command(env: Env, customer_id: str, output: Path | None) -> None:
    """Everything held about one customer, as JSON (a subject access request)."""
    from engine.store.privacy import export_customer

    _, store = env.config_and_store(create=False, read_only=True)
    with store.engine.connect() as conn:
        data = export_customer(conn, customer_id)
    if output is None:
        write_json(data, sys.stdout)
        return
    partial = output.with_name(output.name + ".partial")
    output.parent.mkdir(parents=True, exist_ok=True)  # exports/ (git-ignored) need not exist yet
    with partial.open("w", encoding="utf-8") as out:
        write_json(data, out)
    partial.replace(output)  # never a half-written export under the name asked for
    click.echo(f"wrote {output}", err=True)


@click.command(name="forget")
@click.argument("customer_id")
@pass_env
@handles_errors
def forget_command(env: Env, customer_id: str) -> None:
    """Erase one customer's personal data; keep only the hashes never-twice and suppression need."""
    from engine.store.privacy import forget_customer, scrub_after_forget

    _, store = env.config_and_store(create=False)
    with store.engine.begin() as conn:
        done = forget_customer(conn, customer_id, datetime.now(timezone.utc))
    for warning in scrub_after_forget(store.engine):  # the old bytes on disk; the erasure above stands
        click.echo(f"warning: {warning}", err=True)
    suppressed = "; their address stays suppressed, as a hash" if done.suppressed else ""
    click.echo(
        f"forgot {customer_id}: {done.events} events deleted; {done.messages} messages, {done.coupons} coupons "
        f"and {done.tasks} tasks kept as {done.kept_as}{suppressed}"
    )
