"""The `nudge` group: global options, and every command module's commands attached to it.

Command modules never import this one; it imports them (imports point down), each when its
command is first asked for: `nudge dry-run` does not load the modules of `serve`, `run` or `report`.
"""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli.common import Env

# Command name → the module and attribute defining it. A module is imported when one of its
# commands runs, or when help or a mistyped name needs them all.
COMMANDS = {
    "init": "setup:init",
    "validate": "setup:validate",
    "schema": "setup:schema_command",
    "migrate": "setup:migrate",
    "import": "setup:import_command",
    "demo": "setup:demo",
    "dry-run": "read:dry_run_command",
    "explain": "read:explain_command",
    "preview": "read:preview_command",
    "catalog": "read:catalog_command",
    "diff": "read:diff_command",
    "run": "deliver:run_command",
    "daemon": "deliver:daemon_command",
    "send-test": "deliver:send_test_command",
    "coupons": "admin:coupons",
    "tasks": "admin:tasks_group",
    "report": "report:report_command",
    "suppressions": "admin:suppressions_group",
    "serve": "admin:serve_command",
    "deliveries": "admin:deliveries_command",
    "customer": "admin:customer_command",
    "export-customer": "privacy:export_customer_command",
    "forget": "privacy:forget_command",
    "metrics": "metrics:metrics_group",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's documented lazy pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute = COMMANDS[cmd_name].split(":")
            # __import__, not importlib.import_module: the import statement's path, which
            # `python -X importtime` (the start-up bench) sees; import_module's is not reported.
            command = getattr(__import__(f"engine.cli.{module}", fromlist=[attribute]), attribute)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        # An unknown name: load every command first, so click's "Did you mean …?" sees them all.
        if args and args[0] not in COMMANDS:
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
