"""Commands that deliver: `nudge run` and `nudge daemon`."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta, timezone

import click

from engine.cli.common import Env, handles_errors, parse_at, pass_env
from engine.cli.output import make_console
from engine.cli.progress import progress
from engine.core.errors import RuntimeFailure


def _runner(env: Env, workspace, store, **kwargs):
    from engine.delivery.occurrence import Runner
    from engine.delivery.outlets import build_outputs

    outputs = build_outputs(workspace.config, workspace.root, os.environ)
    return Runner(
        workspace=workspace,
        store=store,
        outputs=outputs,
        clock=lambda: datetime.now(timezone.utc),
        batch_size=workspace.config.delivery.batch_size,
        lease=workspace.config.delivery.lease,
        workers=workspace.config.delivery.workers,
        **kwargs,
    )


# `run --at` this far in the past is almost certainly a replay that should have been a dry run.
PAST_RUN = timedelta(days=1)


@click.command(name="run")
@click.argument("campaigns", nargs=-1)
@click.option("--at", "at_text", help="The occurrence instant (default: now). Re-running one sends nothing new.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_env
@handles_errors
def run_command(env: Env, campaigns: tuple[str, ...], at_text: str | None, fmt: str) -> None:
    """Evaluate and deliver once, now (or for the occurrence at --at)."""
    from engine.cli.output import write_json
    from engine.delivery.runs import run_campaigns

    workspace = env.workspace()
    at = parse_at(at_text, workspace.config.timezone)
    chosen = workspace.select(campaigns)
    behind = datetime.now(timezone.utc) - at
    if behind > PAST_RUN:
        # Replaying the past is for dry runs; a run sends for real, now, as of that instant.
        click.echo(
            f"warning: --at is {behind.days} days ago: messages leave now, but who gets them, quiet hours "
            "and coupon expiry are as of --at (a coupon valid for 14d may already have expired); "
            "`nudge dry-run --at` shows that instant without sending",
            err=True,
        )
    store = env.store(workspace, create=True)
    runner = _runner(env, workspace, store)
    try:
        with progress("delivering") as tick:
            runner.on_progress = lambda _campaign, _phase, done: tick(done)
            summary = run_campaigns(runner, chosen, at)
    finally:
        runner.outputs.close()
    if fmt == "json":
        write_json(
            {"at": at.isoformat(), "occurrences": [r.as_json() for r in summary.reports], "errors": summary.failures},
            sys.stdout,
        )
    else:
        from engine.cli.render import delivery_table

        delivery_table(summary.reports, make_console(), workspace.config.timezone)
    for failure in summary.failures:
        click.echo(f"error: {failure}", err=True)
    if summary.failures:
        sys.exit(RuntimeFailure.exit_code)


@click.command(name="daemon")
@click.option("--verbose", "-v", is_flag=True, help="Log every step, not just runs and problems.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one object per line (time, level, campaign, occurrence, counts) for a log shipper.",
)
@pass_env
@handles_errors
def daemon_command(env: Env, verbose: bool, log_format: str) -> None:
    """Run every enabled campaign on its schedule until SIGINT/SIGTERM (then finish the batch in hand)."""
    import logging
    import signal
    import threading

    from engine.cli.logs import configure
    from engine.delivery.daemon import Daemon, lock_sqlite, wait_for_store

    configure(log_format, verbose)
    workspace = env.workspace()
    stop = threading.Event()
    log = logging.getLogger("nudge.daemon")

    def on_signal(signum, _frame) -> None:
        log.info("%s: finishing the batch in hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    store = wait_for_store(lambda: env.store(workspace, create=True), stop)
    if store is None:
        return
    if (warning := store.durability_warning()) is not None:
        log.warning("%s", warning)
    lock = lock_sqlite(store.url)
    runner = _runner(env, workspace, store, stop=stop)
    try:
        Daemon(runner=runner, started_at=datetime.now(timezone.utc)).run_forever()
    finally:
        runner.outputs.close()
        if lock is not None:
            lock.close()


@click.command(name="send-test")
@click.argument("campaign")
@click.option("--to", "to", required=True, help="The only address the test goes to.")
@click.option("--as", "as_customer", help="Render for this customer (default: the first one targeted now).")
@pass_env
@handles_errors
def send_test_command(env: Env, campaign: str, to: str, as_customer: str | None) -> None:
    """Send one campaign's email, rendered for one customer, to a test address through the real connector."""
    from engine.delivery.outlets import build_outputs
    from engine.delivery.send_test import send_test

    workspace = env.workspace()
    chosen = workspace.select([campaign])[0]
    store = env.store(workspace, create=False, read_only=True)
    outputs = build_outputs(workspace.config, workspace.root, os.environ)
    try:
        result = send_test(workspace, store, outputs, chosen, to, datetime.now(timezone.utc), as_customer)
    finally:
        outputs.close()
    written = f" as {result.written_to}" if result.written_to and workspace.config.email.connector == "outbox" else ""
    click.echo(
        f"{result.status}: {result.subject!r} rendered for {result.customer}, sent to {result.to} "
        f"through {workspace.config.email.connector}{written}" + (f" ({result.reason})" if result.reason else "")
    )
    if result.outcome != "targeted":  # rendered all the same: what they would get if they were targeted
        why = f": {result.why}" if result.why else ""
        click.echo(
            f"--as: warning: {result.customer} is not targeted by {chosen.campaign} now ({result.outcome}){why}",
            err=True,
        )
    if result.status != "sent":
        sys.exit(1)
