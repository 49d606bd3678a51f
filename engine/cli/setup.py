"""Setting up: `nudge init`, `validate`, `schema`, `migrate`, `import`, `demo`."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from engine.cli.common import Env, handles_errors, known_topics, parse_at, pass_env, shown
from engine.cli.progress import progress
from engine.core.errors import Problem


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@handles_errors
def init(directory: Path) -> None:
    """Scaffold a new workspace with the standard campaigns and a .gitignore for customer data."""
    from engine.workspace.scaffold import create_workspace

    created = create_workspace(directory)
    click.echo(f"created workspace {directory}: {', '.join(created)}")
    click.echo(f"next: cd {directory} && nudge validate && nudge demo")


@click.command()
@click.option("--strict", is_flag=True, help="Warnings (names and values the store has never seen) fail too.")
@pass_env
@handles_errors
def validate(env: Env, strict: bool) -> None:
    """Check config, every rule and every template; print all problems (exit 2 if any)."""
    from engine.core.errors import RuntimeFailure
    from engine.workspace.validate import validate_workspace

    def existing_store(workspace):
        try:
            return env.store(workspace, create=False, read_only=True)
        except RuntimeFailure:  # no store yet, or behind: render for a synthetic customer
            return None

    result = validate_workspace(env.root, existing_store)
    for note in result.notes:
        click.echo(str(Problem(shown(note.path), note.line, note.col, note.message, "note")), err=True)
    for warning in result.warnings:
        click.echo(str(Problem(shown(warning.path), warning.line, warning.col, warning.message, "warning")), err=True)
    workspace = result.workspace
    counted = f"{len(result.warnings)} warning{'s' if len(result.warnings) > 1 else ''}"
    if strict and result.warnings:
        click.echo(f"failed: {counted}, and --strict makes warnings errors", err=True)
        sys.exit(2)
    click.echo(
        f"ok: {len(workspace.campaigns)} campaigns, {len(workspace.segments)} segments, "
        f"templates in {workspace.templates_dir}, each rendered once" + (f"; {counted}" if result.warnings else "")
    )


@click.command(name="schema")
@click.option("--segments", is_flag=True, help="The schema of rules/segments.yaml instead of a campaign file.")
def schema_command(segments: bool) -> None:
    """Print the JSON Schema of a rule file (for editor autocompletion)."""
    from engine.rules.campaign import rule_schema

    click.echo(json.dumps(rule_schema(segments=segments), indent=2))


@click.command()
@pass_env
@handles_errors
def migrate(env: Env) -> None:
    """Create the store or bring its schema up to date."""
    workspace = env.workspace(need_rules=False)
    store = env.store(workspace, create=True)
    click.echo(f"store at schema revision {store.current_revision()}")
    if (warning := store.durability_warning()) is not None:
        click.echo(f"warning: {warning}", err=True)


@click.command(name="import")
@click.argument("kind", type=click.Choice(["customers", "events", "products"]))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Load the valid rows and report the rejects.")
@pass_env
@handles_errors
def import_command(env: Env, kind: str, file: Path, skip_invalid: bool) -> None:
    """Load customers, events or the product catalogue from a CSV or JSON Lines file."""
    from engine.ingest.importer import import_file
    from engine.ingest.products import import_products

    workspace = env.workspace(need_rules=False)
    store = env.store(workspace, create=True)
    topics = known_topics(workspace.config)
    with progress(f"importing {kind}") as tick:
        now = datetime.now(timezone.utc)
        if kind == "products":
            result = import_products(store, file, now=now, skip_invalid=skip_invalid, on_progress=tick)
        else:
            result = import_file(store, kind, file, now=now, skip_invalid=skip_invalid, on_progress=tick, topics=topics)
    for item in result.rejected:
        click.echo(str(item), err=True)
    skipped = f", {len(result.rejected)} rejected" if result.rejected else ""
    skipped += f", {result.forgotten} forgotten (nudge forget) skipped" if result.forgotten else ""
    skipped += f", {result.consent_logged} changes of consent logged" if result.consent_logged else ""
    click.echo(f"{kind}: {result.read} rows read, {result.written} written{skipped}")
    if result.statistics:
        click.echo(f"warning: imported, but the planner statistics were not refreshed: {result.statistics}", err=True)


@click.command()
@click.option("--customers", "size", default=3000, show_default=True, help="How many demo customers.")
@click.option("--at", "at_text", help="Build the history up to this instant (default: now).")
@click.option("--force", is_flag=True, help="Add the demo even though the store holds real customers.")
@pass_env
@handles_errors
def demo(env: Env, size: int, at_text: str | None, force: bool) -> None:
    """Build a demo store of synthetic customers and events, then show a dry run."""
    from engine.cli.output import make_console
    from engine.cli.render import dry_run_table
    from engine.ingest.demo import build_demo
    from engine.reports.dryrun import dry_run

    workspace = env.workspace()
    at = parse_at(at_text, workspace.config.timezone)
    store = env.store(workspace, create=True)
    people, history = build_demo(store, at, size=size, force=force)
    click.echo(f"demo store: {people} customers, {history} events ({store.url})")
    with store.engine.connect() as conn:
        result = dry_run(conn, workspace, workspace.select(), at, render=1)
    dry_run_table(result, make_console(), show_ids=5, zone=workspace.config.timezone)
