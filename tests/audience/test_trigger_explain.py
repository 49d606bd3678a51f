"""`nudge explain` of a triggered campaign, on both databases: each trigger event of the customer
placed as the occurrence at `--at` places it (due, answered by which occurrence and ledger row,
waiting, suppressed by the keyed follow-up, seen too late), and the same verdicts as the planner."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner

from engine.audience.explain import explain
from engine.audience.planner import Planner
from engine.audience.trigger import FIRST_WINDOW, MAX_LATE
from engine.audience.trigger_explain import TriggerState, explain_trigger
from engine.cli.main import main
from engine.core.clock import naive_utc
from engine.delivery.occurrence import run_occurrence
from tests.support.helpers import Clock, make_runner, write_workspace
from tests.support.store import seed

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
LAG = timedelta(minutes=30, seconds=5)  # delay + settle
CART = {
    "campaign": "cart",
    "trigger": {"event": "add_to_cart", "delay": "30m", "not_followed_by": {"type": "checkout", "same": ["cart_id"]}},
    "cooldown": "0d",
    "audience": {"not": {"event": "purchase", "within": "1h"}},
    "actions": [{"email": {"template": "cart.html.j2", "subject": "Your cart {{ trigger.properties.cart_id }}"}}],
}


def person(cid: str) -> dict:
    return {"id": cid, "first_name": cid, "email": f"{cid}@example.com", "email_opt_in": True}


def event(kind: str, cid: str, moment: datetime, **properties) -> dict:
    return {
        "id": f"{kind}-{cid}-{moment:%H%M%S}",
        "customer_id": cid,
        "type": kind,
        "occurred_at": moment,
        **properties,
    }


def setup(store, tmp_path):
    config = {"store": store.url, "email": {"connector": "outbox", "outbox": {"dir": "outbox"}}}
    ws = write_workspace(tmp_path / "ws", [CART], config=config, templates={"cart.html.j2": "<p>cart</p>"})
    runner = make_runner(ws, store, Clock(T0))
    campaign = ws.campaigns["cart"].campaign
    return ws, campaign, lambda at: run_occurrence(runner, campaign, at)


def nudge(ws, *args: str) -> str:
    result = CliRunner().invoke(main, ["--workspace", str(ws.root), *args], env={"NUDGE_SECRET": "s", "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


def explained(ws, cid: str, at: datetime) -> dict:
    return json.loads(nudge(ws, "explain", cid, "--campaign", "cart", "--at", at.isoformat(), "--format", "json"))


def test_the_customer_who_got_the_reminder_sees_which_occurrence_answered_which_trigger(store, tmp_path):
    seed(
        store,
        customers=[person("ann")],
        events=[
            event("add_to_cart", "ann", T0, cart_id="k1"),
            event("checkout", "ann", T0 + timedelta(minutes=10), cart_id="k0"),  # another cart
            event("add_to_cart", "ann", T0 + timedelta(minutes=40), cart_id="k2"),
            event("checkout", "ann", T0 + timedelta(minutes=50), cart_id="k2"),  # this cart
            event("add_to_cart", "ann", T0 + timedelta(minutes=80), cart_id="k3"),
        ],
    )
    ws, _, run = setup(store, tmp_path)
    first = T0 + LAG
    run(first)

    now = explained(ws, "ann", first)
    assert (now["outcome"], now["trigger"]["due"]) == ("targeted", 1)
    (due,) = now["trigger"]["events"]
    assert (due["state"], due["delivery"]["status"], due["occurrence"]) == ("due", "sent", first.isoformat())
    assert now["trigger"]["window"]["planned"] is True

    later = T0 + timedelta(minutes=95)
    data = explained(ws, "ann", later)
    assert data["audience"]["passed"] is True and data["outcome"] == "no_trigger_due"
    assert "1 answered, 1 suppressed, 1 waiting" in data["reason"] and "10:50:05" in data["reason"]
    trigger = data["trigger"]
    assert trigger["window"] == {
        "occurrence": later.isoformat(),
        "happened_after": (later - LAG - MAX_LATE).isoformat(),
        "happened_by": (later - LAG).isoformat(),
        "previous_occurrence": first.isoformat(),
        "previous_took_up_to": T0.isoformat(),
        "planned": False,
    }
    answered, suppressed, waiting = trigger["events"]
    assert (answered["state"], answered["occurrence"]) == ("answered", first.isoformat())
    assert answered["delivery"]["status"] == "sent"
    assert answered["followed_by"] == [
        {"occurred_at": (T0 + timedelta(minutes=10)).isoformat(), "counts": False, "keyed": {"cart_id": "k0"}}
    ]
    assert answered["verdict"].startswith("no checkout with the same cart_id after it (checkout at 2026-06-01 09:10:00")
    assert (suppressed["state"], suppressed["delivery"]) == ("suppressed", None)
    assert suppressed["verdict"] == "checkout with the same cart_id at 2026-06-01 09:50:00 UTC: suppressed"
    assert (waiting["state"], waiting["due_at"]) == ("waiting", (T0 + timedelta(minutes=80) + LAG).isoformat())

    text = nudge(ws, "explain", "ann", "--campaign", "cart", "--at", later.isoformat())
    assert "trigger: add_to_cart, 30m after it (+ 5s settle); not followed by checkout with the same cart_id" in text
    assert "✔ answered  add_to_cart at 2026-06-01 09:00:00 UTC" in text
    assert "taken by the occurrence of 2026-06-01 09:30:05 UTC" in text and "delivery 1: sent" in text
    assert "✘ suppressed  add_to_cart at 2026-06-01 09:40:00 UTC" in text
    assert "… waiting  add_to_cart at 2026-06-01 10:20:00 UTC" in text and "due at 2026-06-01 10:50:05 UTC" in text
    assert "outcome: no_trigger_due — no add_to_cart is due at this instant" in text


def test_late_events_are_unseen_by_an_occurrence_already_planned_then_due(store, tmp_path):
    seed(store, customers=[person("ann"), person("ben")], events=[event("add_to_cart", "ann", T0, cart_id="k1")])
    _, campaign, run = setup(store, tmp_path)
    first, second = T0 + LAG, T0 + LAG + timedelta(minutes=1)
    run(first)
    seed(store, events=[event("add_to_cart", "ben", T0 - timedelta(seconds=30), cart_id="k2")])  # stored late
    with store.engine.connect() as conn:
        at_first = explain_trigger(conn, campaign, first, "ben", "UTC")
        at_second = explain_trigger(conn, campaign, second, "ben", "UTC")
    assert [e.state for e in at_first.events] == [TriggerState.UNSEEN]
    assert [e.state for e in at_second.events] == [TriggerState.DUE]
    run(second)
    with store.engine.connect() as conn:
        after = explain_trigger(conn, campaign, second + timedelta(minutes=1), "ben", "UTC")
    (item,) = after.events
    assert (item.state, item.occurrence, item.delivery["status"]) == ("answered", naive_utc(second), "sent")


def test_events_before_the_first_look_back_or_older_than_max_late_are_history(store, tmp_path):
    first = T0 + timedelta(hours=1)
    old = first - LAG - FIRST_WINDOW  # the first occurrence looks back to here (exclusive)
    seed(store, customers=[person("ann"), person("ben")], events=[event("add_to_cart", "ann", old, cart_id="k1")])
    _, campaign, run = setup(store, tmp_path)
    run(first)
    second = first + timedelta(hours=2)
    seed(store, events=[event("add_to_cart", "ben", second - LAG - MAX_LATE, cart_id="k2")])  # stored late
    with store.engine.connect() as conn:
        ann = explain_trigger(conn, campaign, second, "ann", "UTC")
        ben = explain_trigger(conn, campaign, second, "ben", "UTC")
    assert [(e.state, e.occurrence) for e in ann.events] == [(TriggerState.BEFORE_CAMPAIGN, None)]
    assert [(e.state, e.occurrence) for e in ben.events] == [(TriggerState.TOO_LATE, naive_utc(second))]
    run(second)
    with store.engine.connect() as conn:
        ben = explain_trigger(conn, campaign, second + timedelta(minutes=1), "ben", "UTC")
    assert [(e.state, e.occurrence, e.delivery) for e in ben.events] == [
        (TriggerState.TOO_LATE, naive_utc(second), None)
    ]


def test_explain_says_due_for_exactly_the_customers_the_planner_takes(store, tmp_path):
    """Across instants before, at and after occurrences: a due trigger event, and the audience
    passing, is the planner's audience for the triggered campaign — no more, no less."""
    people = [f"c{n}" for n in range(6)]
    seed(
        store,
        customers=[person(c) for c in people],
        events=[
            event("add_to_cart", "c0", T0, cart_id="a"),
            event("add_to_cart", "c1", T0 + timedelta(minutes=1), cart_id="b"),
            event("checkout", "c1", T0 + timedelta(minutes=5), cart_id="b"),
            event("add_to_cart", "c2", T0 + timedelta(minutes=2), cart_id="c"),
            event("checkout", "c2", T0 + timedelta(minutes=5), cart_id="x"),
            event("add_to_cart", "c3", T0 + timedelta(minutes=6), cart_id="d"),
            event("purchase", "c3", T0 + timedelta(minutes=20)),  # outside the audience for an hour
            event("add_to_cart", "c4", T0 + timedelta(minutes=20), cart_id="e"),
            event("add_to_cart", "c5", T0 + timedelta(minutes=20), cart_id="f"),
            event("add_to_cart", "c5", T0 + timedelta(minutes=21), cart_id="g"),
        ],
    )
    ws, campaign, run = setup(store, tmp_path)
    run(T0 + LAG + timedelta(minutes=3))
    run(T0 + LAG + timedelta(minutes=30))
    instants = [T0 + LAG + timedelta(minutes=m, seconds=s) for m in (0, 3, 10, 20, 30, 45, 80) for s in (0, 1)]
    seen_due: set[str] = set()
    for at in instants:
        with store.engine.connect() as conn:
            planner = Planner(conn=conn, config=ws.config, segments=ws.segments, at=at)
            planned = {c.customer_id for c in planner.classify(campaign, contact=False)}
            due = {c for c in people if explain_trigger(conn, campaign, at, c, "UTC").due}
            inside = {c for c in due if explain(conn, campaign, planner.context(), c).passed}
        assert planned == inside, (at, planned, due)
        seen_due |= due
    assert seen_due == {"c0", "c2", "c3", "c4", "c5"}  # c1 checked out its cart; c3 bought, so not planned
