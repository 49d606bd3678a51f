"""`nudge deliveries` and `nudge customer ID`: the ledger and one customer's story."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner

from engine.cli.main import main

AT = "2026-06-01T09:00:00+00:00"


def nudge(workspace_dir, *args):
    return CliRunner().invoke(main, ["--workspace", str(workspace_dir), *args])


def test_deliveries_and_a_customer_timeline(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "300", "--at", AT).exit_code == 0
    assert nudge(workspace_dir, "run", "lapsed-buyers", "low-satisfaction", "--at", AT).exit_code == 0
    rows = json.loads(nudge(workspace_dir, "deliveries", "--format", "json").stdout)
    assert rows and {r["campaign"] for r in rows} == {"lapsed-buyers", "low-satisfaction"}
    only = json.loads(
        nudge(workspace_dir, "deliveries", "lapsed-buyers", "--status", "held_out", "--format", "json").stdout
    )
    assert only and all(r["campaign"] == "lapsed-buyers" and r["status"] == "held_out" for r in only)
    table = list(csv.DictReader(io.StringIO(nudge(workspace_dir, "deliveries", "--format", "csv").stdout)))
    assert len(table) == len(rows) and set(table[0]) >= {"id", "campaign", "customer_id", "status", "reason"}
    assert json.loads(nudge(workspace_dir, "deliveries", "--since", "1h", "--format", "json").stdout) == []
    someone = next(r["customer_id"] for r in rows if r["campaign"] == "low-satisfaction")
    story = json.loads(nudge(workspace_dir, "customer", someone, "--format", "json").stdout)
    assert story["customer"]["id"] == someone and story["events"]
    assert any(m["campaign"] == "low-satisfaction" for m in story["messages"])
    assert any(t["queue"] for t in story["tasks"])
    shown = nudge(workspace_dir, "customer", someone)
    assert shown.exit_code == 0 and someone in shown.stdout and "Tasks" in shown.stdout
    missing = nudge(workspace_dir, "customer", "nobody")
    assert missing.exit_code == 2 and "no customer with id 'nobody'" in missing.stderr


def test_a_journey_named_without_its_step_lists_every_step_and_a_typo_is_pointed_out(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "400", "--at", AT).exit_code == 0
    assert nudge(workspace_dir, "run", "churn-winback", "--at", AT).exit_code == 0
    rows = json.loads(nudge(workspace_dir, "deliveries", "churn-winback", "--format", "json").stdout)
    assert rows and {r["campaign"] for r in rows} == {"churn-winback/offer"}
    typo = nudge(workspace_dir, "deliveries", "churn-winbak")
    assert typo.exit_code == 0 and "note: the ledger has no campaign 'churn-winbak'" in typo.stderr
    assert "churn-winback/offer" in typo.stderr
