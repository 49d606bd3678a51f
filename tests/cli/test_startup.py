"""What `nudge dry-run` loads before it answers: on SQLite, none of the packages only other
commands, other outputs or PostgreSQL need (issue 25: its imports are measured against the
third-party floor by the benchmark; this keeps the ones it does not need out, without timing)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.store import ROOT

# Each is imported where it is used: rendering, delivery, serving, the PostgreSQL dialect, people's tables.
NOT_FOR_A_JSON_DRY_RUN = (
    "sqlalchemy.dialects.postgresql",
    "psycopg",
    "rich",
    "css_inline",
    "mrml",
    "twilio",
    "requests",
    "phonenumbers",
    "numpy",
    "scipy",
    "prometheus_client",
    "sendgrid",
    "werkzeug",
    "gunicorn",
    # nudge's own: rendering (only with --render), other commands' modules, export and erasure
    "engine.messages.actions",
    "engine.messages.email_html",
    "engine.messages.context",
    "engine.store.privacy",
    "engine.cli.setup",
    "engine.cli.deliver",
    "engine.cli.admin",
    "engine.cli.report",
    "engine.cli.privacy",
    "engine.cli.metrics",
)


def _loaded(stderr: str) -> set[str]:
    """The modules `python -X importtime` reported (an import statement's path: the bench's view)."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_a_json_dry_run_on_sqlite_loads_only_what_it_needs(workspace_dir):
    nudge = [sys.executable, "-X", "importtime", "-m", "engine", "--workspace", str(workspace_dir)]
    assert subprocess.run([*nudge, "migrate"], cwd=ROOT, capture_output=True).returncode == 0
    done = subprocess.run(
        [*nudge, "dry-run", "--format", "json", "--at", "2026-06-01T09:00:00+00:00"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["campaigns"]  # it did plan: every module it needs was loaded
    loaded = _loaded(done.stderr)
    assert "sqlalchemy.dialects.sqlite" in loaded and "engine.audience.planner" in loaded
    assert sorted(loaded & set(NOT_FOR_A_JSON_DRY_RUN)) == []


def test_a_commands_help_loads_its_own_module_and_no_library(workspace_dir):
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "engine", "--workspace", str(workspace_dir), "dry-run", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "Who would be targeted" in done.stdout
    loaded = _loaded(done.stderr)
    commands = {name[len("engine.cli.") :] for name in loaded if name.startswith("engine.cli.")}
    assert commands == {"main", "common", "read", "output", "progress"}  # not setup, deliver, admin, …
    assert sorted(loaded & {"sqlalchemy", "pydantic", "jinja2", "yaml", "engine.rules.config"}) == []


def test_every_lazy_command_is_registered_under_its_own_name():
    from click.testing import CliRunner

    from engine.cli.main import COMMANDS, main

    for name in COMMANDS:
        assert main.get_command(None, name).name == name  # type: ignore[arg-type, union-attr]
    listed = CliRunner().invoke(main, ["--help"]).output
    assert all(f"  {name} " in listed for name in COMMANDS)
