"""`nudge report` as a person reads it: at 80 and 120 columns nothing is cut, every number is the
one `--format json` gives, and a journey's funnel agrees with the tables above it."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from tests.support.helpers import write_workspace
from tests.support.store import seed

AT = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
VARIANTS = """\
campaign: winback-ab
schedule: "0 9 * * *"
audience: {all: [{segment: buyer}, {not: {event: purchase, within: 30d}}]}
holdout: 20%
actions:
  - email:
      variants:
        - {name: a, weight: 50, template: winback_ab.html.j2, subject: "A {{ customer.first_name }}"}
        - {name: b, weight: 50, template: winback_ab.html.j2, subject: "B {{ customer.first_name }}"}
"""


def nudge(workspace_dir, *args, columns: int | None = None):
    env = {"NUDGE_SECRET": "s", **({"COLUMNS": str(columns)} if columns else {})}
    result = CliRunner().invoke(main, ["--workspace", str(workspace_dir), *args], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def ran(workspace_dir, store):
    """The demo shop on either store, with an A/B test, run on three days of its past."""
    config = workspace_dir / "config.yaml"
    config.write_text(config.read_text().replace("sqlite:///nudge.db", store.url))
    (workspace_dir / "rules" / "winback-ab.yaml").write_text(VARIANTS)
    (workspace_dir / "templates" / "winback_ab.html.j2").write_text("<p>Come back, {{ customer.first_name }}</p>\n")
    nudge(workspace_dir, "demo", "--customers", "500", "--at", AT.isoformat())
    for days in (20, 17, 13):  # the journey's three steps, and purchases after each
        nudge(workspace_dir, "run", "--at", (AT - timedelta(days=days)).isoformat())
    return workspace_dir


def _row(text: str, name: str, channel: str | None = None) -> list[str]:
    """The cells after `name` (and its channel, in the deliveries table) on the one table row that starts with it."""
    first = [name, channel] if channel else [name]
    rows = [line.split()[len(first) :] for line in text.splitlines() if line.split()[: len(first)] == first]
    [cells] = [r for r in rows if r and all(re.fullmatch(r"[\d,.%–…]+", cell) for cell in r)]
    return cells


@pytest.mark.parametrize("columns", [80, 120])
def test_the_report_is_readable_at_80_and_120_columns_with_the_json_numbers(ran, columns):
    data = json.loads(nudge(ran, "report", "--format", "json"))
    text = nudge(ran, "report", columns=columns)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= columns
    assert not re.search(r"[\w.,%(]…", text), text  # no cell cut short ("targ…", "0.0% of 1…")
    assert "*" not in text  # no footnote about a mark no row carries
    for entry in data["campaigns"]:
        row = [entry["targeted"], entry["sent"], entry["failed"], entry["unknown"] + entry["sending"]]
        row += [entry["pending"], entry["held_out"]]
        via = {"email": "email", "none": "—"}[next(iter(entry["channels"]))]
        assert _row(text, entry["campaign"], via) == [f"{n:,}" for n in row]
        if entry["resolved"]:
            assert f"{entry['campaign']} {entry['resolved']:,}" in text
        measured = entry["measurement"]
        block = text.split(f"{entry['campaign']} — goal: ")[1].split("\n\n")[0]
        for arm in ("contacted", "holdout"):
            if measured[arm]["customers"]:
                assert f"{measured[arm]['converted']:,} of {measured[arm]['customers']:,} converted" in block
        lift = measured["lift"]
        if lift is None:
            assert "no holdout to compare with" in block
            continue
        flat = " ".join(block.split())
        low, high = (f"{100 * v:+.1f}" for v in lift["ci95"])
        assert f"{100 * lift['difference']:+.1f} pp" in flat and f"95% interval {low} … {high} pp" in flat
        if lift["relative"] is not None:
            assert f"{100 * lift['relative']:+.0f}% relative" in flat
        assert ("the interval excludes zero" in flat) == lift["significant"]
    [ab] = [c["measurement"] for c in data["campaigns"] if c["campaign"] == "winback-ab"]
    for arm in ab["variants"]:
        assert _row(text, arm["name"])[:2] == [f"{arm['customers']:,}", f"{arm['converted']:,}"]
    assert " ".join(f"winback-ab: {ab['verdict']}".split()) in " ".join(text.split())
    [journey] = data["journeys"]
    for step in journey["steps"]:
        assert _row(text, step["step"])[0] == f"{step['reached']:,}"


def test_the_journey_funnel_counts_what_the_ledger_holds_after_a_run_ahead_of_the_clock(store, tmp_path):
    seed(
        store,
        customers=[
            {"id": f"j{i:02d}", "first_name": "J", "email": f"j{i}@example.com", "email_opt_in": True, "country": "US"}
            for i in range(30)
        ],
    )
    journey = {
        "campaign": "winback",
        "schedule": "0 9 * * *",
        "audience": {"attribute": "country", "eq": "US"},
        "steps": [
            {"name": "offer", "actions": [{"email": {"template": "hello.html.j2", "subject": "offer"}}]},
            {"name": "reminder", "wait": "3d", "actions": [{"email": {"template": "hello.html.j2", "subject": "r"}}]},
            {"name": "call", "wait": "4d", "actions": [{"task": {"queue": "care", "title": "Call {{ customer.id }}"}}]},
        ],
    }
    config = {"store": store.url, "email": {"connector": "outbox", "outbox": {"dir": "outbox"}}}
    root = write_workspace(tmp_path / "ws", [journey], config=config).root
    ahead = datetime(2099, 1, 1, 9, 0, tzinfo=timezone.utc)  # planned ahead of any clock this runs on
    for days in (0, 3, 7):
        nudge(root, "run", "--at", (ahead + timedelta(days=days)).isoformat())
    data = json.loads(nudge(root, "report", "winback", "--format", "json"))
    sent = {c["campaign"].split("/")[1]: c["sent"] for c in data["campaigns"]}
    assert sent == {"offer": 30, "reminder": 30, "call": 30}
    [funnel] = data["journeys"]
    assert [(s["step"], s["reached"], s.get("sent", 0)) for s in funnel["steps"]] == [
        ("offer", 30, 30),
        ("reminder", 30, 30),
        ("call", 30, 30),
    ]
    assert (funnel["entered"], funnel["finished"], funnel["in_progress"]) == (30, 30, 0)
    text = nudge(root, "report", "winback", columns=80)
    assert _row(text, "reminder") == ["30", "30", "0", "0", "0"] and _row(text, "call")[0] == "30"


def test_the_dry_run_table_fits_80_columns_with_every_count(ran):
    data = json.loads(nudge(ran, "dry-run", "--at", AT.isoformat(), "--format", "json"))
    text = nudge(ran, "dry-run", "--at", AT.isoformat(), columns=80)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    for plan in data["campaigns"]:
        cells = _row(text, plan["campaign"])
        assert cells[0] == str(plan["matched"]) and cells[-1] == str(plan["targeted"])
        for name, share in plan.get("variants", {}).items():
            assert re.search(rf"^ +variant {name} \(\d+%\) +{share} *$", text, re.M)


def test_the_audience_at_each_campaigns_last_occurrence_fits_80_columns(ran):
    data = json.loads(nudge(ran, "report", "--format", "json"))
    text = nudge(ran, "report", columns=80)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    table = text.split("Audience at the last occurrence")[1]
    for name, history in data["audience"].items():
        [cells] = [line.split()[1:] for line in table.splitlines() if line.split()[:1] == [name]]
        last = history[-1]
        change = f"{last['targeted'] - history[-2]['targeted']:+,}"
        assert cells[1:5] == [f"{last['matched']:,}", f"{last['targeted']:,}", change, str(len(history))]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", cells[0])
    assert {"winback-ab", "churn-winback/reminder"} <= set(data["audience"])
