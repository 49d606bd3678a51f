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


def test_a_customer_shows_their_topic_choices_and_consent_log_in_the_workspace_zone(tmp_path):
    from tests.support.helpers import write_workspace

    topics = {"promotions": {"label": "Offers"}, "newsletter": {"label": "News"}}
    config = {"store": "sqlite:///nudge.db", "timezone": "Asia/Shanghai", "topics": topics}
    ws = write_workspace(tmp_path / "ws", [], config=config).root
    people = tmp_path / "shop.csv"
    people.write_text(
        "id,email,phone,country,email_opt_in,sms_opt_in,sms_unsubscribed_at,topics.newsletter\n"
        "c1,mei@example.com,138 0013 8000,CN,true,true,2026-05-31T16:30:00Z,false\n"
    )
    assert nudge(ws, "import", "customers", str(people)).exit_code == 0
    story = json.loads(nudge(ws, "customer", "c1", "--format", "json").stdout)
    assert [(s["topic"], s["subscribed"], s["chosen"]) for s in story["subscriptions"]] == [
        ("newsletter", False, True),
        ("promotions", True, False),  # never chosen: subscribed, as the default has it
    ]
    changes = {(e["channel"], e["topic"], e["change"], e["old_value"], e["new_value"]) for e in story["consent_log"]}
    assert changes == {
        ("email", None, "opt_in", "false", "true"),
        ("sms", None, "opt_in", "false", "true"),
        ("sms", None, "unsubscribe", None, "2026-05-31T16:30:00"),
        (None, "newsletter", "topic", "true", "false"),
    }
    assert {e["source"] for e in story["consent_log"]} == {"import shop.csv"}
    assert story["customer"]["phone"] == "+8613800138000" and story["customer"]["sms_opt_in"] is True
    shown = nudge(ws, "customer", "c1")
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())  # the table may wrap: compare words
    assert "topics: newsletter: left" in text and "promotions: subscribed (default)" in text
    assert "Consent log (4)" in text and "import shop.csv" in text
    assert "unsubscribe – → 2026-06-01 00:30:00 CST" in text  # the instant in the workspace's zone
    assert "SMS unsubscribed 2026-06-01 00:30:00 CST" in text
