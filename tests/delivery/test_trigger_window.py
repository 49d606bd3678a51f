"""The trigger window by the instant alone (`at`, never the wall clock), on both databases: the
settle time, a new campaign's first look back, the keyed `not_followed_by`, late events, the
MAX_LATE limit, and `nudge dry-run --at` / `nudge run --at` following the same rule."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from click.testing import CliRunner

from engine.audience.trigger import FIRST_WINDOW, MAX_LATE
from engine.cli.main import main
from engine.core.clock import naive_utc
from engine.delivery.occurrence import run_occurrence
from engine.store.tables import deliveries, tasks
from tests.support.helpers import Clock, make_runner, write_workspace
from tests.support.store import seed

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
DELAY = timedelta(minutes=30)
SETTLE = timedelta(seconds=5)  # SPEC: occurred_at + delay + 5 s ≤ T
CART = {
    "campaign": "cart",
    "trigger": {"event": "add_to_cart", "delay": "30m", "not_followed_by": {"type": "checkout", "same": ["cart_id"]}},
    "cooldown": "0d",
    "audience": {"not": {"event": "purchase", "within": "1h"}},
    "actions": [{"task": {"queue": "carts", "title": "{{ customer.id }}: {{ trigger.properties.cart_id }}"}}],
}


def event(kind: str, cid: str, moment: datetime, **properties) -> dict:
    name = f"{kind}-{cid}-{moment:%H%M%S}"
    return {"id": name, "customer_id": cid, "type": kind, "occurred_at": moment, **properties}


def added(cid: str, moment: datetime, cart_id) -> dict:
    return event("add_to_cart", cid, moment, cart_id=cart_id)


def checkout(cid: str, moment: datetime, **properties) -> dict:
    return event("checkout", cid, moment, **properties)


def setup(store, tmp_path, campaign: dict = CART):
    ws = write_workspace(tmp_path / "ws", [campaign], config={"store": store.url})
    runner = make_runner(ws, store, Clock(T0))
    return ws, lambda at: run_occurrence(runner, ws.campaigns[campaign["campaign"]].campaign, at)


def answered(store) -> list[tuple[str, datetime]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.customer_id, deliveries.c.occurrence)).all()
    return sorted((cid, occurrence) for cid, occurrence in rows)


def test_an_event_is_taken_once_its_delay_and_the_settle_time_are_over(store, tmp_path):
    seed(store, customers=[{"id": "ann"}], events=[added("ann", T0, "k1")])
    _, run = setup(store, tmp_path)
    due = T0 + DELAY + SETTLE
    run(due - timedelta(seconds=1))
    assert answered(store) == []  # the delay ended 4 s ago: it may still be in flight
    run(due)
    run(due + timedelta(seconds=1))  # the next occurrence does not take it again
    assert answered(store) == [("ann", naive_utc(due))]


def test_the_keyed_not_followed_by_counts_a_checkout_of_the_same_cart_only(store, tmp_path):
    people = ["ann", "ben", "cy", "dee", "eve"]
    seed(
        store,
        customers=[{"id": c} for c in people],
        events=[
            added("ann", T0, "k1"),
            checkout("ann", T0 + timedelta(minutes=10), cart_id="k2"),  # another cart: still reminded
            added("ben", T0, "k1"),
            checkout("ben", T0 + timedelta(minutes=10), cart_id="k1"),  # this cart: no reminder
            added("cy", T0, "k1"),
            checkout("cy", T0 + timedelta(minutes=10)),  # a checkout that names no cart is not this cart's
            added("dee", T0, 7),
            checkout("dee", T0 + timedelta(minutes=10), cart_id="7"),  # the text "7" is not the number 7
            added("eve", T0, "k1"),
            checkout("eve", T0 - timedelta(minutes=10), cart_id="k1"),  # before the trigger: does not count
        ],
    )
    _, run = setup(store, tmp_path)
    at = T0 + DELAY + SETTLE
    run(at)
    assert [cid for cid, _ in answered(store)] == ["ann", "cy", "dee", "eve"]
    with store.engine.connect() as conn:
        titles = sorted(conn.execute(sa.select(tasks.c.title)).scalars())
    assert titles == ["ann: k1", "cy: k1", "dee: 7", "eve: k1"]


def test_a_new_campaign_looks_back_its_first_window_only(store, tmp_path):
    at = T0 + timedelta(hours=2)
    edge = at - DELAY - SETTLE - FIRST_WINDOW  # the first occurrence takes what happened after this
    seed(
        store,
        customers=[{"id": "old"}, {"id": "new"}],
        events=[added("old", edge, "k1"), added("new", edge + timedelta(seconds=1), "k2")],
    )
    _, run = setup(store, tmp_path)
    run(at)
    assert answered(store) == [("new", naive_utc(at))]


def test_a_late_event_is_taken_by_the_next_occurrence_unless_older_than_max_late(store, tmp_path):
    seed(store, customers=[{"id": c} for c in ("early", "late", "stale")], events=[added("early", T0, "k0")])
    _, run = setup(store, tmp_path)
    first = T0 + DELAY + SETTLE
    run(first)
    second = first + timedelta(hours=2)
    end = second - DELAY - SETTLE  # what the second occurrence takes happened by this
    # Both reach the store after the first occurrence, though both happened before the second's end.
    seed(
        store,
        events=[
            added("late", end - MAX_LATE + timedelta(seconds=1), "k1"),  # just within the hour
            added("stale", end - MAX_LATE, "k2"),  # an hour older than the end: history
        ],
    )
    run(second)
    assert answered(store) == [("early", naive_utc(first)), ("late", naive_utc(second))]


def test_an_event_stored_after_an_occurrence_planned_goes_to_the_next_one(store, tmp_path):
    """Within the first occurrence's window by its time, but it reached the store after that
    occurrence looked: the next occurrence takes it (once), the first never does."""
    seed(store, customers=[{"id": "ann"}, {"id": "ben"}], events=[added("ann", T0, "k1")])
    _, run = setup(store, tmp_path)
    first, second = T0 + DELAY + SETTLE, T0 + DELAY + SETTLE + timedelta(minutes=1)
    run(first)
    seed(store, events=[added("ben", T0 - timedelta(seconds=30), "k2")])
    run(first)  # a rerun of the first occurrence sees what it saw, no more
    run(second)
    run(second + timedelta(minutes=1))
    assert answered(store) == [("ann", naive_utc(first)), ("ben", naive_utc(second))]


def test_two_triggers_in_one_window_are_answered_once_with_the_latest(store, tmp_path):
    seed(
        store,
        customers=[{"id": "ann"}],
        events=[added("ann", T0, "k1"), added("ann", T0 + timedelta(minutes=2), "k2")],
    )
    _, run = setup(store, tmp_path)
    run(T0 + DELAY + SETTLE + timedelta(minutes=5))
    run(T0 + DELAY + SETTLE + timedelta(minutes=6))
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(tasks.c.title)).scalars().all() == ["ann: k2"]
    assert len(answered(store)) == 1


def nudge(ws, *args: str) -> str:
    result = CliRunner().invoke(main, ["--workspace", str(ws), *args], env={"NUDGE_SECRET": "s"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_dry_run_and_run_at_an_instant_follow_the_same_rule(store, tmp_path):
    seed(store, customers=[{"id": "ann"}, {"id": "ben"}], events=[added("ann", T0, "k1"), added("ben", T0, "k2")])
    seed(store, events=[checkout("ben", T0 + timedelta(minutes=5), cart_id="k2")])
    ws, _ = setup(store, tmp_path)
    due = T0 + DELAY + SETTLE

    def targeted(at: datetime) -> list[str]:
        plan = json.loads(nudge(ws.root, "dry-run", "cart", "--at", at.isoformat(), "--format", "json"))
        return plan["campaigns"][0]["customers"]

    assert (targeted(due - timedelta(milliseconds=1)), targeted(due)) == ([], ["ann"])
    nudge(ws.root, "run", "cart", "--at", (due - timedelta(milliseconds=1)).isoformat())
    assert answered(store) == []
    nudge(ws.root, "run", "cart", "--at", due.isoformat())
    assert answered(store) == [("ann", naive_utc(due))]
    assert targeted(due + timedelta(minutes=1)) == []  # answered: the next occurrence has nothing
