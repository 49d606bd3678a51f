"""The `nudge` command: parse arguments, call the library, print. Nothing else lives here."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import sqlalchemy.exc
from .config import resolve_store_url
from .errors import NudgeError, Problem, UserInputError
from .loader import Workspace, load_workspace

SCAFFOLD = Path(__file__).parent / "scaffold"


def _shown(path: str) -> str:
    """A path under the current folder is shown relative to it, as the user would type it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return relative if not relative.startswith("..") and os.path.isabs(path) else path


def _fail(exc: NudgeError) -> None:
    if isinstance(exc, UserInputError):
        for item in exc.problems:
            click.echo(str(Problem(_shown(item.path), item.line, item.col, item.message)), err=True)
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


def handles_errors(func):
    """A user's mistake or an unreachable service ends as a message and an exit code, never a traceback."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except NudgeError as exc:
            _fail(exc)
        except sqlalchemy.exc.DBAPIError as exc:
            # The store went away or refused mid-command (connection lost, disk full, locked).
            click.echo(f"error: store: {str(exc.orig).strip().splitlines()[0]}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
    return wrapper


def parse_at(value: str | None, zone: str) -> datetime:
    """--at as an aware instant; without an offset it is read in the workspace time zone."""
    if value is None:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise UserInputError([Problem("--at", None, None,
                                      f"expected an ISO 8601 time like 2026-06-01T09:00:00+00:00, got {value!r}")]) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment.astimezone(timezone.utc)


class Env:
    """What the commands share: the workspace folder, loaded on demand."""

    def __init__(self, root: Path):
        self.root = root

    def workspace(self, need_rules: bool = True) -> Workspace:
        return load_workspace(self.root, need_rules=need_rules)

    def store(self, workspace: Workspace, *, create: bool, read_only: bool = False):
        from .store import open_store
        return open_store(resolve_store_url(workspace.config, workspace.root), create=create, read_only=read_only)

    def config_and_store(self, *, create: bool, read_only: bool = False):
        """For commands that need the configuration and the store, not the rules."""
        workspace = self.workspace(need_rules=False)
        return workspace, self.store(workspace, create=create, read_only=read_only)


pass_env = click.make_pass_decorator(Env)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--workspace", "-w", type=click.Path(file_okay=False, path_type=Path), default=".",
              show_default=True, help="Folder holding config.yaml, rules/ and templates/.")
@click.version_option(package_name="nudge")
@click.pass_context
def main(ctx: click.Context, workspace: Path) -> None:
    """nudge: marketing campaigns as YAML rules, evaluated in your database, delivered exactly once."""
    ctx.obj = Env(workspace.resolve())


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@handles_errors
def init(directory: Path) -> None:
    """Scaffold a new workspace with the four standard campaigns."""
    if (directory / "config.yaml").exists() or (directory / "rules").exists():
        raise UserInputError([Problem(str(directory), None, None, "already a workspace (config.yaml or rules/ exists)")])
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(SCAFFOLD / "config.yaml", directory / "config.yaml")
    shutil.copytree(SCAFFOLD / "rules", directory / "rules")
    shutil.copytree(SCAFFOLD / "templates", directory / "templates")
    click.echo(f"created workspace {directory}: config.yaml, rules/, templates/")
    click.echo(f"next: cd {directory} && nudge validate && nudge demo")


@main.command()
@pass_env
@handles_errors
def validate(env: Env) -> None:
    """Check config, every rule and every template; print all problems (exit 2 if any)."""
    from .validate import validate_workspace
    workspace = validate_workspace(env.root)
    click.echo(f"ok: {len(workspace.campaigns)} campaigns, {len(workspace.segments)} segments, "
               f"templates in {workspace.templates_dir}")


@main.command(name="schema")
def schema_command() -> None:
    """Print the JSON Schema of a rule file (for editor autocompletion)."""
    from .model import rule_schema
    click.echo(json.dumps(rule_schema(), indent=2))


@main.command()
@pass_env
@handles_errors
def migrate(env: Env) -> None:
    """Create the store or bring its schema up to date."""
    workspace = env.workspace(need_rules=False)
    store = env.store(workspace, create=True)
    click.echo(f"store at schema revision {store.current_revision()}")


@main.command(name="import")
@click.argument("kind", type=click.Choice(["customers", "events"]))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Load the valid rows and report the rejects.")
@pass_env
@handles_errors
def import_command(env: Env, kind: str, file: Path, skip_invalid: bool) -> None:
    """Load customers or events from a CSV or JSON Lines file."""
    from .importer import import_file
    workspace = env.workspace(need_rules=False)
    store = env.store(workspace, create=True)
    result = import_file(store, kind, file, now=datetime.now(timezone.utc), skip_invalid=skip_invalid)
    for item in result.rejected:
        click.echo(str(item), err=True)
    skipped = f", {len(result.rejected)} rejected" if result.rejected else ""
    click.echo(f"{kind}: {result.read} rows read, {result.written} written{skipped}")


@main.command()
@click.option("--customers", "size", default=3000, show_default=True, help="How many demo customers.")
@click.option("--at", "at_text", help="Build the history up to this instant (default: now).")
@pass_env
@handles_errors
def demo(env: Env, size: int, at_text: str | None) -> None:
    """Build a demo store of synthetic customers and events, then show a dry run."""
    from .demo import build_demo
    from .dryrun import dry_run
    from .output import dry_run_table, make_console
    workspace = env.workspace()
    at = parse_at(at_text, workspace.config.timezone)
    store = env.store(workspace, create=True)
    people, history = build_demo(store, at, size=size)
    click.echo(f"demo store: {people} customers, {history} events ({store.url})")
    with store.engine.connect() as conn:
        result = dry_run(conn, workspace, workspace.select(), at, render=1)
    dry_run_table(result, make_console(), show_ids=5)


from . import cli_read  # noqa: E402,F401  (registers dry-run and explain)
from . import cli_write  # noqa: E402,F401  (registers run and daemon)
from . import cli_admin  # noqa: E402,F401  (registers coupons, tasks and report)
from . import cli_metrics  # noqa: E402,F401  (registers metrics)
