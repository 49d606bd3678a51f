"""`nudge run` semantics: each occurrence delivered once, ledger first, coupons and tasks hanging off it."""

from __future__ import annotations

import email
import re
from datetime import datetime, timedelta, timezone
from email import policy

import pytest
import sqlalchemy as sa

from engine.core.errors import RuntimeFailure
from engine.delivery.occurrence import run_occurrence
from engine.delivery.runs import run_campaigns
from engine.messages.coupons import ALPHABET
from engine.store.tables import coupons, deliveries, occurrences, tasks
from tests.support.helpers import Clock, email_campaign, make_runner, write_workspace
from tests.support.store import seed

AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def shoppers(n: int = 20, **fields) -> list[dict]:
    return [
        {
            "id": f"c{i:03d}",
            "first_name": f"Name{i}",
            "email": f"c{i}@example.com",
            "email_opt_in": True,
            "country": "US",
            **fields,
        }
        for i in range(n)
    ]


def ledger_rows(store, campaign: str | None = None) -> list:
    query = sa.select(deliveries).order_by(deliveries.c.customer_id)
    if campaign:
        query = query.where(deliveries.c.campaign == campaign)
    with store.engine.connect() as conn:
        return conn.execute(query).all()


def outbox_messages(root):
    return [
        email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted((root / "outbox").glob("*.eml"))
    ]


def test_an_occurrence_is_delivered_once_however_often_it_runs(store, tmp_path):
    seed(store, customers=shoppers(20))
    ws = write_workspace(tmp_path, [email_campaign()])
    clock = Clock(AT)
    first = run_occurrence(make_runner(ws, store, clock), ws.campaigns["promo"].campaign, AT)
    again = run_occurrence(make_runner(ws, store, clock), ws.campaigns["promo"].campaign, AT)
    assert first.counts == {"sent": 20} and not again.ran
    assert len(outbox_messages(tmp_path)) == 20
    assert {r.status for r in ledger_rows(store)} == {"sent"}
    later = run_occurrence(make_runner(ws, store, clock), ws.campaigns["promo"].campaign, AT + timedelta(days=1))
    assert later.ran and later.counts == {} and later.matched == 20  # cooldown (30d) holds them back
    assert len(outbox_messages(tmp_path)) == 20


def test_every_message_has_text_html_and_one_click_unsubscribe(store, tmp_path):
    seed(
        store,
        customers=[
            {
                "id": "x",
                "first_name": "Eve\r\nBcc: victim@example.com",
                "email": "x@example.com",
                "email_opt_in": True,
                "country": "US",
            }
        ],
    )
    ws = write_workspace(tmp_path, [email_campaign()])
    run_occurrence(make_runner(ws, store, Clock(AT)), ws.campaigns["promo"].campaign, AT)
    [message] = outbox_messages(tmp_path)
    assert message["Subject"] == "Hello Eve Bcc: victim@example.com"  # one header, no injected Bcc
    assert message["Bcc"] is None and message["To"] == "x@example.com"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<http://127\.0\.0\.1:8025/unsubscribe/[\w.-]+>", message["List-Unsubscribe"])
    kinds = [part.get_content_type() for part in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    assert "Eve" in message.get_body(("plain",)).get_content()


def test_holdout_is_recorded_and_never_contacted(store, tmp_path):
    seed(store, customers=shoppers(200))
    ws = write_workspace(tmp_path, [email_campaign(holdout="20%")])
    report = run_occurrence(make_runner(ws, store, Clock(AT)), ws.campaigns["promo"].campaign, AT)
    rows = ledger_rows(store)
    held = [r.customer_id for r in rows if r.status == "held_out"]
    assert 20 <= len(held) <= 60 and report.held_out == len(held)
    recipients = {m["To"] for m in outbox_messages(tmp_path)}
    assert len(recipients) == 200 - len(held)
    assert not recipients & {f"c{int(h[1:])}@example.com" for h in held}


def test_coupons_are_unique_unguessable_and_in_the_email(store, tmp_path):
    seed(store, customers=shoppers(30))
    campaign = email_campaign()
    campaign["actions"].insert(0, {"coupon": {"name": "promo", "percent_off": 15, "valid_for": "14d", "prefix": "WIN"}})
    campaign["actions"][1]["email"]["template"] = "coupon.html.j2"
    ws = write_workspace(tmp_path, [campaign])
    runner = make_runner(ws, store, Clock(AT))
    run_occurrence(runner, ws.campaigns["promo"].campaign, AT)
    with store.engine.connect() as conn:
        issued = conn.execute(sa.select(coupons)).all()
    codes = [c.code for c in issued]
    assert len(codes) == 30 == len(set(codes))
    assert all(re.fullmatch(f"WIN-[{ALPHABET}]{{10}}", code) for code in codes)
    assert all(c.expires_at == datetime(2026, 6, 15, 12, 0) for c in issued)
    bodies = " ".join(m.get_body(("html",)).get_content() for m in outbox_messages(tmp_path))
    assert all(code in bodies for code in codes)


def test_tasks_follow_when_and_reach_the_csv_sink(store, tmp_path):
    seed(store, customers=shoppers(3))
    seed(
        store,
        events=[
            {
                "customer_id": "c001",
                "type": "purchase",
                "occurred_at": AT - timedelta(days=1),
                "properties": {"amount": 2000},
            }
        ],
    )
    campaign = {
        "campaign": "care",
        "schedule": {"every": "1h"},
        "audience": {"attribute": "country", "eq": "US"},
        "actions": [
            {
                "task": {
                    "queue": "vip",
                    "title": "Call {{ customer.first_name }}",
                    "due_in": "2d",
                    "when": {"event": "purchase", "sum": {"of": "amount", "gte": 1000}},
                }
            }
        ],
    }
    ws = write_workspace(tmp_path, [campaign], config={"tasks": {"sink": "csv", "csv": {"path": "tasks.csv"}}})
    report = run_occurrence(make_runner(ws, store, Clock(AT)), ws.campaigns["care"].campaign, AT)
    assert report.counts == {"sent": 3}
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(tasks)).all()
    assert [(t.customer_id, t.title, t.due_at, t.handoff) for t in stored] == [
        ("c001", "Call Name1", datetime(2026, 6, 3, 12, 0), "done")
    ]
    lines = (tmp_path / "tasks.csv").read_text().splitlines()
    assert lines[0].startswith("id,queue,title") and "Call Name1" in lines[1] and len(lines) == 2


def test_quiet_hours_defer_to_the_customers_morning_then_send_once(store, tmp_path):
    # 12:00 UTC is 21:00 in Tokyo (quiet) and 08:00 in New York (quiet until 09:00).
    seed(
        store,
        customers=[
            {"id": "tokyo", "email": "t@example.com", "email_opt_in": True, "country": "US", "timezone": "Asia/Tokyo"},
            {
                "id": "ny",
                "email": "n@example.com",
                "email_opt_in": True,
                "country": "US",
                "timezone": "America/New_York",
            },
            {
                "id": "london",
                "email": "l@example.com",
                "email_opt_in": True,
                "country": "US",
                "timezone": "Europe/London",
            },
        ],
    )
    ws = write_workspace(
        tmp_path, [email_campaign()], config={"limits": {"quiet_hours": {"start": "21:00", "end": "09:00"}}}
    )
    clock = Clock(AT)
    report = run_occurrence(make_runner(ws, store, clock), ws.campaigns["promo"].campaign, AT)
    assert report.counts == {"sent": 1} and report.waiting == 2
    waiting = {r.customer_id: r.not_before for r in ledger_rows(store) if r.status == "pending"}
    assert waiting == {"ny": datetime(2026, 6, 1, 13, 0), "tokyo": datetime(2026, 6, 2, 0, 0)}
    clock.advance(timedelta(hours=1, minutes=1))  # New York opens
    resumed = run_campaigns(make_runner(ws, store, clock), [ws.campaigns["promo"].campaign], AT)
    # Resumed, and not run a second time (that would report the campaign twice, once with nothing).
    assert [(r.counts, r.note) for r in resumed.reports] == [
        ({"sent": 1}, "resumed; 1 waiting (quiet hours in the customer's time zone, or stopped early)")
    ]
    clock.advance(timedelta(hours=11))  # Tokyo opens
    run_campaigns(make_runner(ws, store, clock), [ws.campaigns["promo"].campaign], AT)
    assert sorted(m["To"] for m in outbox_messages(tmp_path)) == ["l@example.com", "n@example.com", "t@example.com"]
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(occurrences.c.status)).scalars().all() == ["done"]


def test_a_template_failing_for_one_customer_is_recorded_and_the_rest_go_out(store, tmp_path):
    seed(store, customers=shoppers(3))
    seed(
        store,
        events=[
            {
                "customer_id": "c000",
                "type": "product_view",
                "occurred_at": AT - timedelta(hours=1),
                "properties": {"product_name": "Boots"},
            }
        ],
    )
    campaign = email_campaign(audience={"attribute": "country", "eq": "US"})
    campaign["actions"][0]["email"]["subject"] = "About {{ last.product_view.properties.product_name }}"
    ws = write_workspace(tmp_path, [campaign, email_campaign("other", priority=-1, cooldown="0d")])
    summary = run_campaigns(make_runner(ws, store, Clock(AT)), ws.select(), AT)
    by_status = {(r.campaign, r.customer_id): (r.status, r.reason) for r in ledger_rows(store)}
    assert by_status[("promo", "c000")] == ("sent", None)
    assert by_status[("promo", "c001")][0] == "failed" and "product_view" in by_status[("promo", "c001")][1]
    assert all(by_status[("other", f"c00{i}")][0] == "sent" for i in range(3))
    assert not summary.failures


def test_an_unreachable_smtp_server_stops_sending_and_marks_nothing_sent(store, tmp_path):
    from tests.support.pgserver import free_port

    seed(store, customers=shoppers(5))
    ws = write_workspace(
        tmp_path,
        [email_campaign()],
        config={
            "email": {
                "connector": "smtp",
                "unsubscribe_url": "https://shop.example/unsubscribe",
                "smtp": {"host": "127.0.0.1", "port": free_port(), "timeout": 2},
            }
        },
    )
    with pytest.raises(RuntimeFailure, match="unreachable"):
        run_occurrence(make_runner(ws, store, Clock(AT)), ws.campaigns["promo"].campaign, AT)
    rows = ledger_rows(store)
    assert {r.status for r in rows} == {"pending"}  # handed back, retried next run
    assert all("unreachable" in r.reason for r in rows)


def test_frequency_cap_lets_the_higher_priority_campaign_win(store, tmp_path):
    seed(store, customers=shoppers(4))
    ws = write_workspace(
        tmp_path,
        [email_campaign("high", priority=90), email_campaign("low", priority=10)],
        config={"limits": {"frequency_cap": {"max": 1, "per": "7d"}}},
    )
    summary = run_campaigns(make_runner(ws, store, Clock(AT)), ws.select(), AT)
    assert [(r.campaign, r.counts.get("sent", 0)) for r in summary.reports] == [("high", 4), ("low", 0)]
    assert all(r.campaign == "high" for r in ledger_rows(store))


def test_a_dead_worker_is_taken_over_and_the_outbox_says_what_left(store, tmp_path):
    seed(store, customers=shoppers(6))
    ws = write_workspace(tmp_path, [email_campaign()])
    clock = Clock(AT)
    dead = make_runner(ws, store, clock, batch_size=2, worker="elsewhere:1:dead")
    calls = {"n": 0}
    dead.should_stop = lambda: calls.__setitem__("n", calls["n"] + 1) or calls["n"] > 1  # stop after one batch
    run_occurrence(dead, ws.campaigns["promo"].campaign, AT)
    # Simulate the crash window: one row in flight with its file written, one in flight without.
    with store.engine.begin() as conn:
        ids = (
            conn.execute(
                sa.select(deliveries.c.id).where(deliveries.c.status == "pending").order_by(deliveries.c.id).limit(2)
            )
            .scalars()
            .all()
        )
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.id.in_(ids))
            .values(status="sending", claim="x", handed_at=datetime(2026, 6, 1, 11, 0))  # both reached the outbox
        )
        conn.execute(sa.update(occurrences).values(heartbeat_at=datetime(2026, 6, 1, 11, 0)))
    runner = make_runner(ws, store, clock)
    from connectors.api import OutgoingEmail

    runner.outputs.email().send([OutgoingEmail(ids[0], "s@x", "c@x", "s", "<p>h</p>", "h")])
    clock.advance(timedelta(minutes=10))  # the dead worker's lease runs out
    report = run_occurrence(runner, ws.campaigns["promo"].campaign, AT)
    assert report.ran and report.counts == {"sent": 3}  # the two never sent + the released one
    statuses = {r.id: r.status for r in ledger_rows(store)}
    assert statuses[ids[0]] == "sent" and list(statuses.values()).count("sent") == 6
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 6


def test_an_address_suppressed_after_planning_is_not_emailed(store, tmp_path):
    from engine.delivery.suppressions import suppress

    seed(
        store,
        customers=[
            {"id": "tokyo", "email": "t@example.com", "email_opt_in": True, "country": "US", "timezone": "Asia/Tokyo"}
        ],
    )
    ws = write_workspace(
        tmp_path, [email_campaign()], config={"limits": {"quiet_hours": {"start": "21:00", "end": "09:00"}}}
    )
    clock = Clock(AT)
    assert run_occurrence(make_runner(ws, store, clock), ws.campaigns["promo"].campaign, AT).waiting == 1
    with store.engine.begin() as conn:
        suppress(conn, ["T@example.com"], "spamreport", "sendgrid", AT)
    clock.advance(timedelta(hours=13))
    run_campaigns(make_runner(ws, store, clock), [ws.campaigns["promo"].campaign], AT)
    [row] = ledger_rows(store)
    assert row.status == "failed" and "suppressed (spamreport)" in row.reason
    assert outbox_messages(tmp_path) == []


def test_a_template_without_an_unsubscribe_link_still_gets_one(store, tmp_path):
    seed(store, customers=shoppers(1))
    ws = write_workspace(tmp_path, [email_campaign()])  # hello.html.j2 has no link
    run_occurrence(make_runner(ws, store, Clock(AT)), ws.campaigns["promo"].campaign, AT)
    [message] = outbox_messages(tmp_path)
    link = message["List-Unsubscribe"].strip("<>")
    assert f'href="{link}"' in message.get_body(("html",)).get_content()
    assert link in message.get_body(("plain",)).get_content()


def test_a_task_sink_failure_keeps_the_task_and_never_causes_a_second_email(store, tmp_path):
    from tests.support.pgserver import free_port

    seed(store, customers=shoppers(2))
    campaign = email_campaign()
    campaign["actions"].append({"task": {"queue": "care", "title": "Call {{ customer.first_name }}"}})
    ws = write_workspace(
        tmp_path,
        [campaign],
        config={
            "tasks": {"sink": "webhook", "webhook": {"url": f"http://127.0.0.1:{free_port()}/tasks", "timeout": 2}}
        },
    )
    clock = Clock(AT)
    run_occurrence(make_runner(ws, store, clock), ws.campaigns["promo"].campaign, AT)
    rows = ledger_rows(store)
    assert {r.status for r in rows} == {"sent"} and all("webhook unreachable" in r.reason for r in rows)
    with store.engine.connect() as conn:
        assert {t.handoff for t in conn.execute(sa.select(tasks))} == {"failed"}
    clock.advance(timedelta(days=1))
    run_occurrence(make_runner(ws, store, clock), ws.campaigns["promo"].campaign, AT + timedelta(days=1))
    assert len(outbox_messages(tmp_path)) == 2  # cooldown held: no second email


def test_a_machine_with_a_long_host_name_still_sends(store, tmp_path, monkeypatch):
    # Linux allows 64 characters; the rows a dispatch holds carry a token naming its process.
    monkeypatch.setattr("socket.gethostname", lambda: "nudge-daemon-" + "h" * 51)
    seed(store, customers=shoppers(3))
    ws = write_workspace(tmp_path, [email_campaign()])
    report = run_occurrence(make_runner(ws, store, Clock(AT)), ws.campaigns["promo"].campaign, AT)
    assert report.counts == {"sent": 3}
    assert len(outbox_messages(tmp_path)) == 3
