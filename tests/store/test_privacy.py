"""A customer's data rights, on both databases: export everything held, erase it (keeping only the
hashes that never-twice and suppression need), and keep events no longer than configured."""

from __future__ import annotations

import json
from datetime import timedelta

import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli.main import main
from engine.store.tables import deliveries, metadata
from tests.support.helpers import write_workspace
from tests.support.store import NOW, seed

ADA = {
    "id": "cust-ada-7",
    "first_name": "Adalind",
    "last_name": "Lovelace",
    "email": "Ada.Lovelace@example.org",
    "phone": "+44 20 7946 0018",
    "email_opt_in": True,
    "country": "US",
    "city": "Marylebone",
}
BOB = {"id": "cust-bob-2", "first_name": "Bob", "email": "bob@example.org", "email_opt_in": True, "country": "US"}
PERSONAL = [
    "cust-ada-7",
    "Adalind",
    "Lovelace",
    "ada.lovelace@example.org",
    "ada.old",
    "7946",
    "Marylebone",
    "Rue Morgue",
]
CAMPAIGN = {
    "campaign": "promo",
    "schedule": "0 9 * * *",
    "cooldown": "0d",
    "audience": {"attribute": "country", "eq": "US"},
    "actions": [
        {"coupon": {"name": "promo", "percent_off": 10, "valid_for": "7d"}},
        {"email": {"template": "coupon.html.j2", "subject": "Hi {{ customer.first_name }}"}},
        {"task": {"queue": "care", "title": "Call {{ customer.first_name }} {{ customer.last_name }}"}},
    ],
}


def nudge(ws, *args: str, code: int = 0):
    result = CliRunner().invoke(main, ["--workspace", str(ws), *args], env={"NUDGE_SECRET": "s"})
    assert result.exit_code == code, result.output
    return result


def everything(store) -> str:
    """Every row of every table, as text: where personal data would show."""
    with store.engine.connect() as conn:
        return "\n".join(
            repr(tuple(row)) for table in metadata.sorted_tables for row in conn.execute(sa.select(table))
        ).lower()


def test_export_then_forget_leaves_nothing_personal_and_contacts_nobody_twice(store, tmp_path):
    seed(
        store,
        customers=[ADA, BOB],
        events=[
            {
                "customer_id": "cust-ada-7",
                "type": "purchase",
                "occurred_at": NOW - timedelta(days=3),
                "amount": 30,
                "address": "Rue Morgue",
            },
        ],
    )
    config = {"store": store.url, "email": {"connector": "outbox", "outbox": {"dir": "outbox"}}}
    ws = write_workspace(tmp_path / "ws", [CAMPAIGN], config=config).root
    nudge(ws, "run", "--at", NOW.isoformat())
    nudge(ws, "suppressions", "add", "ada.lovelace@example.org", "--reason", "unsubscribe")
    # An address she had before, and a provider's refusal that quoted it.
    nudge(ws, "suppressions", "add", "ada.old@example.net", "--reason", "bounce")
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.customer_id == "cust-ada-7")
            .values(email="ada.old@example.net", reason="550 5.1.1 <ada.old@example.net>: mailbox unknown")
        )

    exported = json.loads(nudge(ws, "export-customer", "cust-ada-7").stdout)
    assert exported["customer"]["email"] == "ada.lovelace@example.org"  # stored lower-cased
    assert [e["type"] for e in exported["events"]] == ["purchase"]
    assert [m["status"] for m in exported["messages"]] == ["sent"]
    assert exported["messages"][0]["email"] == "ada.old@example.net"
    assert len(exported["coupons"]) == 1 and exported["tasks"][0]["title"] == "Call Adalind Lovelace"
    assert exported["suppressions"][0]["reason"] == "unsubscribe"
    target = tmp_path / "ada.json"
    nudge(ws, "export-customer", "cust-ada-7", "-o", str(target))
    assert json.loads(target.read_text()) == exported

    forgot = nudge(ws, "forget", "cust-ada-7")
    assert "forgot cust-ada-7" in forgot.stdout
    text = everything(store)
    assert not [value for value in PERSONAL if value.lower() in text]
    assert "forgotten:" in text and "sha256:" in text  # what never-twice and suppression need
    # The reports still add up: the delivery is counted, under its hash.
    report = json.loads(nudge(ws, "report", "--format", "json").stdout)
    assert report["campaigns"][0]["sent"] == 2

    # A rerun reaches Bob again and nobody else; a nightly import that still has Ada skips her.
    nudge(ws, "run", "--at", (NOW + timedelta(days=1)).isoformat())
    recipients = sorted(
        "ada" if "ada.lovelace" in p.read_text().lower() else "bob" for p in (ws / "outbox").glob("*.eml")
    )
    assert recipients == ["ada", "bob", "bob"]  # Ada's one email is from before she was forgotten
    people = tmp_path / "people.jsonl"
    people.write_text(json.dumps(ADA) + "\n" + json.dumps(BOB) + "\n")
    imported = nudge(ws, "import", "customers", str(people))
    assert "1 forgotten (nudge forget) skipped" in imported.output
    history = tmp_path / "events.jsonl"
    history.write_text(
        json.dumps({"customer_id": "cust-ada-7", "type": "purchase", "occurred_at": NOW.isoformat()}) + "\n"
    )
    assert "1 forgotten (nudge forget) skipped" in nudge(ws, "import", "events", str(history)).output
    assert not [value for value in PERSONAL if value.lower() in everything(store)]
    nudge(ws, "forget", "cust-ada-7", code=2)  # nothing left to forget: says so

    # She signs up again under a new id with the same address: her unsubscribe still holds, in planning.
    again = tmp_path / "again.jsonl"
    again.write_text(json.dumps({**ADA, "id": "cust-ada-new"}) + "\n")
    nudge(ws, "import", "customers", str(again))
    (plan,) = json.loads(nudge(ws, "dry-run", "promo", "--format", "json", "--at", NOW.isoformat()).stdout)["campaigns"]
    assert "cust-ada-new" not in plan["customers"] and plan["excluded"]["no_consent"] == 1
    # Suppressed again in plain text (a provider's bounce), then forgotten again: one hash stays.
    nudge(ws, "suppressions", "add", "ada.lovelace@example.org", "--reason", "bounce")
    nudge(ws, "forget", "cust-ada-new")
    assert not [value for value in PERSONAL if value.lower() in everything(store)]
    assert everything(store).count("sha256:") == 2  # her two addresses, each once


def test_retention_deletes_old_events_daily(store, tmp_path):
    from engine.delivery.daemon import Daemon
    from tests.support.helpers import Clock, make_runner

    seed(
        store,
        customers=[BOB],
        events=[
            {"customer_id": "cust-bob-2", "type": "purchase", "occurred_at": NOW - timedelta(days=days)}
            for days in (1, 29, 31, 400)
        ],
    )
    config = {"store": store.url, "retention": {"events": "30d"}}
    ws = write_workspace(tmp_path / "ws", [CAMPAIGN], config=config)
    clock = Clock(NOW)
    daemon = Daemon(runner=make_runner(ws, store, clock), started_at=NOW)
    daemon.step(NOW)
    with store.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM events")).scalar()
    assert left == 2  # 1 and 29 days old
