"""A win-back journey driven over two weeks of daily ticks (`--at`), on both databases: who gets each
step when, exit on purchase, re-entry after the cooldown, skipped steps with their reason, and a
SIGKILL in the middle of a step followed by a rerun — nobody gets a step twice or skips one
silently."""

from __future__ import annotations

import email
import json
import os
import select
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from email import policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli.main import main
from engine.delivery.runs import run_campaigns
from engine.store.tables import coupons, customers, deliveries, tasks
from tests.support.helpers import Clock, make_runner, write_workspace
from tests.support.store import ROOT, make_store, seed

DAY0 = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
BULK = 300


def day(n: int, hour: int = 9) -> datetime:
    return DAY0 + timedelta(days=n, hours=hour - 9)


JOURNEY = {
    "campaign": "winback",
    "schedule": "0 9 * * *",
    "audience": {"attribute": "country", "eq": "US"},
    "cooldown": "10d",
    "exit_on": {"event": "purchase"},
    "steps": [
        {
            "name": "offer",
            "actions": [
                {"coupon": {"name": "back", "percent_off": 15, "valid_for": "14d"}},
                {"email": {"template": "offer.html.j2", "subject": "offer for {{ customer.first_name }}"}},
            ],
        },
        {
            "name": "reminder",
            "wait": "3d",
            "when": {"not": {"event": "email_open", "within": "3d"}},
            "actions": [{"email": {"template": "reminder.html.j2", "subject": "reminder"}}],
        },
        {"name": "call", "wait": "4d", "actions": [{"task": {"queue": "care", "title": "Call {{ customer.id }}"}}]},
    ],
}
TEMPLATES = {
    "offer.html.j2": "<p>Hi {{ customer.first_name }}, code {{ coupons.back.code }}</p>\n",
    "reminder.html.j2": "<p>Still there, {{ customer.first_name }}? Your code {{ coupons.back.code }}</p>\n",
}


def person(cid: str, consent: bool = True) -> dict:
    return {"id": cid, "first_name": cid, "email": f"{cid}@example.com", "email_opt_in": consent, "country": "US"}


def ledger_rows(store) -> list:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(deliveries).order_by(deliveries.c.occurrence, deliveries.c.campaign)).all()


def history(rows, customer: str) -> list[tuple[int, str, str, str | None]]:
    """(day, step, status, reason) of one customer, in order."""
    return [
        ((r.occurrence - DAY0.replace(tzinfo=None)).days, r.campaign.split("/")[1], r.status, r.reason)
        for r in rows
        if r.customer_id == customer
    ]


def body(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def run_day(workspace, store, n: int) -> None:
    runner = make_runner(workspace, store, Clock(day(n)))
    try:
        summary = run_campaigns(runner, workspace.select(), day(n))
    finally:
        runner.outputs.close()
    assert summary.failures == []


def killed_run(ws: Path, at: datetime, after_files: int) -> bool:
    """`nudge run --at` as a real process, SIGKILLed once it has written `after_files` emails (it
    waits there: the kill lands at that point, never after the run has gone on or finished);
    False if the run ended first."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.paused_outbox", str(after_files)]
        + ["--workspace", str(ws), "run", "--at", at.isoformat()],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NUDGE_SECRET": "s"},
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 300)  # a bound for a loaded machine
        reached = bool(ready) and process.stdout.readline().strip() == f"written {after_files}"
    finally:
        process.kill()
        process.communicate()
    return reached


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_weeks_of_a_winback_journey(kind, tmp_path, request):
    store = make_store(kind, tmp_path, request)
    bulk = [person(f"b{i:04d}") for i in range(BULK)]
    seed(
        store,
        customers=[*bulk, person("c2"), person("c3"), person("c5"), person("c6", consent=False)],
        events=[
            {"customer_id": "c2", "type": "purchase", "occurred_at": day(2, 10), "amount": 40},
            {"customer_id": "c3", "type": "email_open", "occurred_at": day(1, 10)},
        ],
    )
    # Small batches: the SIGKILL below must find the reminder step partway, not already done.
    config = {
        "store": store.url,
        "email": {"connector": "outbox", "outbox": {"dir": "outbox"}},
        "delivery": {"batch_size": 20},
    }
    workspace = write_workspace(tmp_path / "ws", [JOURNEY], config=config, templates=TEMPLATES)
    outbox = workspace.root / "outbox"
    for n in range(0, 15):
        if n == 1:
            with store.engine.begin() as conn:  # c5 unsubscribes after entering
                conn.execute(sa.update(customers).where(customers.c.id == "c5").values(unsubscribed_at=day(1, 12)))
        if n == 3:
            assert killed_run(workspace.root, day(3), after_files=BULK // 3 + 10)  # mid-batch
        run_day(workspace, store, n)
        run_day(workspace, store, n)  # a manual rerun of the same tick changes nothing

    rows = ledger_rows(store)
    # A customer with no events goes through every step, finishes, and re-enters after the cooldown.
    assert history(rows, "b0000") == [
        (0, "offer", "sent", None),
        (3, "reminder", "sent", None),
        (7, "call", "sent", None),
        (10, "offer", "sent", None),
        (13, "reminder", "sent", None),
    ]
    # A purchase after entering ends the pass; the next entry starts a new one.
    assert history(rows, "c2") == [
        (0, "offer", "sent", None),
        (10, "offer", "sent", None),
        (13, "reminder", "sent", None),
    ]
    # `when` false: the step is recorded skipped, and the journey goes on.
    assert history(rows, "c3")[:3] == [
        (0, "offer", "sent", None),
        (3, "reminder", "skipped", "when_false"),
        (7, "call", "sent", None),
    ]
    # Unsubscribed mid-journey: the email step is skipped for consent, the call still happens,
    # and without consent there is no new entry.
    assert history(rows, "c5") == [
        (0, "offer", "sent", None),
        (3, "reminder", "skipped", "no_consent"),
        (7, "call", "sent", None),
    ]
    assert history(rows, "c6") == []

    # Nobody got a step twice, nobody is stuck in between, and the outbox agrees with the ledger.
    assert Counter((r.campaign, r.customer_id, r.occurrence) for r in rows).most_common(1)[0][1] == 1
    assert {r.status for r in rows} <= {"sent", "skipped"}
    mails = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in outbox.glob("*.eml")]
    per_person = Counter((m["To"], m["Subject"].split()[0]) for m in mails)
    assert max(per_person.values()) == 2  # offer and reminder, once per pass
    assert per_person[("b0001@example.com", "reminder")] == 2
    # The reminder carries the code the offer of the same pass issued.
    with store.engine.connect() as conn:
        codes = (
            conn.execute(
                sa.select(coupons.c.code).where(coupons.c.customer_id == "b0001").order_by(coupons.c.created_at)
            )
            .scalars()
            .all()
        )
    reminders = sorted(
        (m for m in mails if m["To"] == "b0001@example.com" and m["Subject"] == "reminder"), key=lambda m: m["Date"]
    )
    assert len(codes) == 2 and [codes[0] in body(reminders[0]), codes[1] in body(reminders[1])] == [True, True]
    emailed = [r for r in rows if r.status == "sent" and not r.campaign.endswith("/call")]
    assert len(mails) == len(emailed)
    # Every pass that reached its end has every step, in order (sent or skipped, never missing).
    passes: dict[str, list[list[str]]] = defaultdict(list)
    for r in rows:
        step = r.campaign.split("/")[1]
        if step == "offer":
            passes[r.customer_id].append([])
        passes[r.customer_id][-1].append(step)
    for cid, seen in passes.items():
        for steps in seen:
            assert steps in (["offer"], ["offer", "reminder"], ["offer", "reminder", "call"]), (cid, steps)
    with store.engine.connect() as conn:
        calls = conn.execute(sa.select(tasks.c.customer_id)).scalars().all()
    assert len(calls) == len(set(calls)) == BULK + 2  # everyone but c2 (bought) and c6 (never entered)
    check_report_and_explain(workspace.root)
    store.dispose()


def nudge(ws: Path, *args: str):
    result = CliRunner().invoke(main, ["--workspace", str(ws), *args], env={"NUDGE_SECRET": "s"})
    assert result.exit_code == 0, result.output
    return result.stdout


def check_report_and_explain(ws: Path) -> None:
    """The funnel and positions, against the passes counted by hand from the story above."""
    report = json.loads(nudge(ws, "report", "winback", "--format", "json"))
    (funnel,) = report["journeys"]
    # Passes: 300 bulk × 2 (d0 finished, d10 on the way), c2 × 2 (left on purchase, on the way),
    # c3 × 2 (finished with the reminder skipped, on the way), c5 × 1 (finished, reminder skipped).
    assert funnel["entered"] == 605 and funnel["held_out"] == 0
    offer, reminder, call = funnel["steps"]
    assert (offer["reached"], offer["sent"]) == (605, 605)
    assert (reminder["reached"], reminder["sent"], reminder["skipped"]) == (604, 602, 2)
    assert reminder["skipped_by"] == {"when_false": 1, "no_consent": 1}
    assert (call["reached"], call["sent"]) == (302, 302)
    assert funnel["exited"] == {"event": "purchase", "passes": 1}
    assert (funnel["finished"], funnel["in_progress"]) == (302, 302)
    assert {c["campaign"] for c in report["campaigns"]} == {"winback/offer", "winback/reminder", "winback/call"}
    assert "journey funnel" in nudge(ws, "report", "winback")

    # c3 on day 11: back in for a second pass, the reminder due at the next tick after 3 days.
    position = json.loads(
        nudge(ws, "explain", "c3", "--campaign", "winback", "--at", day(11).isoformat(), "--format", "json")
    )["journey"]
    assert [s["step"] for s in position["steps"]] == ["offer"]
    assert position["entered_at"] == "2026-06-11T09:00:00+00:00" and position["next_step"] == "reminder"
    assert position["next_due_at"] == "2026-06-14T09:00:00+00:00"
    # c2 on day 5: left on the purchase of day 2.
    text = nudge(ws, "explain", "c2", "--campaign", "winback", "--at", day(5).isoformat())
    assert "left the journey on purchase (after offer)" in text
    # c5 on day 8: finished; the skipped step says why.
    text = nudge(ws, "explain", "c5", "--campaign", "winback", "--at", day(8).isoformat())
    assert "finished the journey" in text and "reminder: skipped (no_consent)" in text
    # Support staff see the position in the customer's timeline.
    (journey,) = json.loads(nudge(ws, "customer", "c3", "--format", "json"))["journeys"]
    assert journey["summary"] == "at step reminder (sent); next: call"
    assert [s["step"] for s in journey["steps"]] == ["offer", "reminder"]
    assert "journey winback: at step reminder (sent); next: call at" in nudge(ws, "customer", "c3")


def test_held_out_at_entry_gets_no_step_and_does_not_reenter(sqlite_store, tmp_path):
    seed(sqlite_store, customers=[person(f"h{i:03d}") for i in range(60)])
    journey = {**JOURNEY, "holdout": "50%", "cooldown": "30d"}
    config = {"store": sqlite_store.url, "email": {"connector": "outbox", "outbox": {"dir": "outbox"}}}
    workspace = write_workspace(tmp_path / "ws", [journey], config=config, templates=TEMPLATES)
    for n in range(0, 8):
        run_day(workspace, sqlite_store, n)
    rows = ledger_rows(sqlite_store)
    held = {r.customer_id for r in rows if r.status == "held_out"}
    assert 15 < len(held) < 45  # about half, by the stable hash
    assert {r.campaign for r in rows if r.customer_id in held} == {"winback/offer"}  # no later step
    assert all(len(history(rows, cid)) == 1 for cid in held)  # and no second entry
    contacted = {r.customer_id for r in rows} - held
    assert all([s for _, s, _, _ in history(rows, cid)] == ["offer", "reminder", "call"] for cid in contacted)
    report = json.loads(nudge(workspace.root, "report", "winback", "--format", "json"))
    assert report["journeys"][0]["held_out"] == len(held)
    assert report["journeys"][0]["entered"] == len(contacted)


def test_a_false_when_at_entry_still_respects_the_exclusions_and_the_cooldown(sqlite_store, tmp_path):
    seed(sqlite_store, customers=[person(f"w{i:03d}") for i in range(40)] + [person("nope", consent=False)])
    steps = [dict(s) for s in JOURNEY["steps"]]
    steps[0] = {**steps[0], "when": {"attribute": "country", "eq": "XX"}}  # false for everyone
    journey = {**JOURNEY, "holdout": "50%", "cooldown": "30d", "steps": steps}
    config = {"store": sqlite_store.url, "email": {"connector": "outbox", "outbox": {"dir": "outbox"}}}
    workspace = write_workspace(tmp_path / "ws", [journey], config=config, templates=TEMPLATES)
    for n in range(0, 8):
        run_day(workspace, sqlite_store, n)
    rows = ledger_rows(sqlite_store)
    entries = Counter(r.customer_id for r in rows if r.campaign == "winback/offer")
    assert max(entries.values()) == 1  # a skipped first step starts the cooldown like any entry
    held = {r.customer_id for r in rows if r.status == "held_out"}
    assert held and all(history(rows, cid) == [(0, "offer", "held_out", None)] for cid in held)
    assert "nope" not in entries  # no consent: never entered (the offer emails)
    skipped = {r.customer_id for r in rows if r.campaign == "winback/offer" and r.status == "skipped"}
    assert skipped == {f"w{i:03d}" for i in range(40)} - held
    assert all([s for _, s, _, _ in history(rows, cid)] == ["offer", "reminder", "call"] for cid in skipped)


SHORT = {
    "campaign": "loop",
    "schedule": "0 9 * * *",
    "audience": {"attribute": "country", "eq": "US"},
    "cooldown": "5d",
    "steps": [
        {
            "name": "offer",
            "when": {"not": {"attribute": "first_name", "eq": "skip"}},
            # No visit, no subject: the offer fails for that customer (a render error is `failed`).
            "actions": [{"email": {"template": "hello.html.j2", "subject": "{{ last.visit.properties.page }}"}}],
        },
        {"name": "call", "wait": "1d", "actions": [{"task": {"queue": "care", "title": "Call {{ customer.id }}"}}]},
    ],
}


def test_an_entry_that_ended_skipped_or_failed_starts_the_cooldown_like_any(store, tmp_path):
    """Each pass ends on day 1; the days after it show whether the entry's cooldown held."""
    seed(
        store,
        customers=[person("ok"), {**person("skip"), "first_name": "skip"}, person("fail")],
        events=[{"customer_id": c, "type": "visit", "occurred_at": day(-1), "page": "/"} for c in ("ok", "skip")],
    )
    config = {"store": store.url, "email": {"connector": "outbox", "outbox": {"dir": "outbox"}}}
    workspace = write_workspace(tmp_path / "ws", [SHORT], config=config, templates={"hello.html.j2": "<p>Hi</p>"})
    for n in range(0, 7):
        run_day(workspace, store, n)
    rows = ledger_rows(store)
    steps = {cid: [(d, s, status) for d, s, status, _ in history(rows, cid)] for cid in ("ok", "skip", "fail")}
    assert steps["ok"] == [(0, "offer", "sent"), (1, "call", "sent"), (5, "offer", "sent"), (6, "call", "sent")]
    assert steps["skip"] == [(0, "offer", "skipped"), (1, "call", "sent"), (5, "offer", "skipped"), (6, "call", "sent")]
    assert steps["fail"] == [(0, "offer", "failed"), (1, "call", "sent"), (5, "offer", "failed"), (6, "call", "sent")]


def test_a_step_stopped_by_the_frequency_cap_is_recorded_skipped_and_the_journey_goes_on(store, tmp_path):
    seed(store, customers=[person("c1")])
    journey = {
        **JOURNEY,
        "steps": [
            JOURNEY["steps"][0],
            {"name": "reminder", "wait": "1d", "actions": JOURNEY["steps"][1]["actions"]},  # email the next day
            {**JOURNEY["steps"][2], "wait": "1d"},
        ],
    }
    config = {
        "store": store.url,
        "email": {"connector": "outbox", "outbox": {"dir": "outbox"}},
        "limits": {"frequency_cap": {"max": 1, "per": "2d"}},
    }
    workspace = write_workspace(tmp_path / "ws", [journey], config=config, templates=TEMPLATES)
    for n in range(0, 5):
        run_day(workspace, store, n)
    assert history(ledger_rows(store), "c1") == [
        (0, "offer", "sent", None),
        (1, "reminder", "skipped", "frequency_cap"),
        (2, "call", "sent", None),
    ]
    text = nudge(workspace.root, "explain", "c1", "--campaign", "winback", "--at", day(2).isoformat())
    assert "reminder: skipped (frequency_cap)" in text and "finished the journey" in text
