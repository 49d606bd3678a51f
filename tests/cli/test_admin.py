"""Operator commands over a real run: coupon export, the task queue, the delivery report."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner

from engine.cli.main import main

AT = "2026-06-01T12:00:00+00:00"


def nudge(ws, *args):
    return CliRunner().invoke(main, ["--workspace", str(ws), *args], catch_exceptions=False, env={"NUDGE_SECRET": "s"})


def test_run_then_report_export_and_close_tasks(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "500", "--at", AT).exit_code == 0
    config = workspace_dir / "config.yaml"
    config.write_text(config.read_text().replace('  quiet_hours: {start: "21:00", end: "09:00"}', ""))
    run = nudge(workspace_dir, "run", "--at", AT, "--format", "json")
    assert run.exit_code == 0, run.stderr
    occurrences = {o["campaign"]: o for o in json.loads(run.stdout)["occurrences"]}
    report = {
        c["campaign"]: c for c in json.loads(nudge(workspace_dir, "report", "--format", "json").stdout)["campaigns"]
    }
    for name, row in report.items():
        assert row["sent"] == occurrences[name]["sent"] and row["held_out"] == occurrences[name]["held_out"]
        assert row["targeted"] == row["sent"] + row["failed"] + row["unknown"] + row["pending"]
    assert (
        report["lapsed-buyers"]["sent"]
        == len(list((workspace_dir / "outbox").glob("*.eml")))
        - report["birthday"]["sent"]
        - report["browse-abandonment"]["sent"]
        - report["churn-winback/offer"]["sent"]
    )

    exported = list(csv.DictReader(io.StringIO(nudge(workspace_dir, "coupons", "export", "lapsed-buyers").stdout)))
    assert len(exported) == report["lapsed-buyers"]["sent"]
    assert all(row["code"].startswith("BACK-") and row["delivery_status"] == "sent" for row in exported)
    target = workspace_dir / "codes.csv"
    assert nudge(workspace_dir, "coupons", "export", "-o", str(target)).exit_code == 0
    assert target.read_text().startswith("code,name,customer_id")

    listed = json.loads(nudge(workspace_dir, "tasks", "list", "--queue", "customer-care", "--format", "json").stdout)
    assert len(listed) == report["low-satisfaction"]["sent"] and listed[0]["status"] == "open"
    first = listed[0]["id"]
    assert nudge(workspace_dir, "tasks", "done", str(first)).exit_code == 0
    still_open = json.loads(
        nudge(workspace_dir, "tasks", "list", "--queue", "customer-care", "--format", "json").stdout
    )
    assert first not in [t["id"] for t in still_open]
    missing = nudge(workspace_dir, "tasks", "done", "999999")
    assert missing.exit_code == 2 and "no task with id 999999" in missing.stderr

    again = json.loads(nudge(workspace_dir, "run", "--at", AT, "--format", "json").stdout)
    assert all(not o["ran"] for o in again["occurrences"])  # same occurrence: nothing new


def test_suppressions_add_list_remove(workspace_dir):
    assert (
        nudge(workspace_dir, "suppressions", "add", "A@Example.com", "b@example.com", "--reason", "legal").exit_code
        == 0
    )
    again = nudge(workspace_dir, "suppressions", "add", "a@example.com")
    assert "0 added, 1 already suppressed" in again.output
    listed = json.loads(nudge(workspace_dir, "suppressions", "list", "--format", "json").stdout)
    assert [(s["email"], s["reason"]) for s in listed] == [("a@example.com", "legal"), ("b@example.com", "legal")]
    assert "1 removed" in nudge(workspace_dir, "suppressions", "remove", "B@example.com").output
    table = nudge(workspace_dir, "suppressions", "list").stdout
    assert "a@example.com" in table and "b@example.com" not in table
