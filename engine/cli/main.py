"""The `nudge` group: global options, and every command module's commands attached to it.

Command modules never import this one; it imports them (imports point down).
"""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli import admin, deliver, metrics, privacy, read, report, setup
from engine.cli.common import Env


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace",
    "-w",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Folder holding config.yaml, rules/ and templates/.",
)
@click.version_option(package_name="nudge")
@click.pass_context
def main(ctx: click.Context, workspace: Path) -> None:
    """nudge: marketing campaigns as YAML rules, evaluated in your database, delivered exactly once."""
    ctx.obj = Env(workspace.resolve())


for command in (
    setup.init,
    setup.validate,
    setup.schema_command,
    setup.migrate,
    setup.import_command,
    setup.demo,
    read.dry_run_command,
    read.explain_command,
    read.preview_command,
    read.catalog_command,
    read.diff_command,
    deliver.run_command,
    deliver.daemon_command,
    deliver.send_test_command,
    admin.coupons,
    admin.tasks_group,
    report.report_command,
    admin.suppressions_group,
    admin.serve_command,
    admin.deliveries_command,
    admin.customer_command,
    privacy.export_customer_command,
    privacy.forget_command,
    metrics.metrics_group,
):
    main.add_command(command)
