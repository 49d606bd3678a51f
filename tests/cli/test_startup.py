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
)


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
    loaded = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "sqlalchemy.dialects.sqlite" in loaded and "engine.audience.planner" in loaded
    assert sorted(loaded & set(NOT_FOR_A_JSON_DRY_RUN)) == []
