"""Every planned occurrence leaves one audience_history row with the funnel a dry run at that
instant shows (matched, each exclusion, targeted, per variant, language and channel) and its
planning time; a plan stopped half-way and resumed counts each customer once; retention drops it
with the events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

import engine.delivery.materialize as materialize
from engine.audience.planner import Planner
from engine.delivery.occurrence import run_occurrence
from engine.store.privacy import apply_retention
from engine.store.tables import audience_history, deliveries
from tests.support.helpers import Clock, email_campaign, make_runner, write_workspace
from tests.support.store import seed

AT = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
AB = {
    "email": {
        "variants": [
            {"name": "a", "weight": 50, "template": "hello.html.j2", "subject": "A"},
            {"name": "b", "weight": 50, "template": "hello.html.j2", "subject": "B"},
        ]
    }
}


def shop(store, count: int = 60) -> None:
    people = [
        {
            "id": f"c{i:03d}",
            "first_name": "Ann",
            "email": f"c{i}@example.com",
            "email_opt_in": i % 5 != 0,  # every fifth has no consent
            "country": "US",
            "locale": "zh-CN" if i % 3 == 0 else "en",
        }
        for i in range(count)
    ]
    seed(store, customers=people)


@pytest.fixture
def workspace(tmp_path, store):
    campaign = email_campaign("promo", holdout="20%", cooldown="0d", actions=[AB])
    config = {"store": store.url, "locales": {"default": "en", "supported": ["en", "zh-CN"]}}
    return write_workspace(tmp_path / "ws", [campaign], config=config)


def rows(store) -> list:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(audience_history).order_by(audience_history.c.occurrence)).all()


def dry_plan(store, workspace, at: datetime):
    with store.engine.connect() as conn:
        planner = Planner(conn, workspace.config, workspace.segments, at, count_locales=True)
        return planner.plan(workspace.campaigns["promo"].campaign).as_json()


def test_a_run_records_the_funnel_the_dry_run_shows(store, workspace):
    shop(store)
    expected = dry_plan(store, workspace, AT)
    run_occurrence(make_runner(workspace, store, Clock(AT)), workspace.campaigns["promo"].campaign, AT)
    [row] = rows(store)
    assert (row.campaign, row.occurrence) == ("promo", AT.replace(tzinfo=None))
    assert row.matched == expected["matched"] == 60
    assert row.excluded == expected["excluded"] and row.excluded["no_consent"] == 12
    assert row.targeted == expected["targeted"] and row.held_out == row.excluded["holdout"] == len(expected["held_out"])
    assert row.variants == expected["variants"] and sum(row.variants.values()) == row.targeted
    assert row.locales == expected["locales"] and set(row.locales) == {"en", "zh-CN"}
    assert row.channels == expected["channels"] == {"email": row.targeted}
    assert row.planning_seconds is not None and 0 <= row.planning_seconds < 30
    # Run again (already done): the same row, not a second one, not counted twice.
    run_occurrence(make_runner(workspace, store, Clock(AT)), workspace.campaigns["promo"].campaign, AT)
    assert rows(store) == [row]


def test_a_plan_stopped_half_way_and_resumed_counts_everyone_once(store, workspace, monkeypatch):
    shop(store)
    expected = dry_plan(store, workspace, AT)
    monkeypatch.setattr(materialize, "PLAN_BATCH", 7)
    runner = make_runner(workspace, store, Clock(AT))
    runner.on_progress = lambda campaign, phase, done: runner.stop.set() if done >= 21 else None
    first = run_occurrence(runner, workspace.campaigns["promo"].campaign, AT)
    assert "stopped while planning" in first.note
    [partial] = rows(store)
    assert partial.matched == 21  # what the three committed batches counted, with them
    with store.engine.connect() as conn:
        planned = conn.execute(sa.select(sa.func.count()).where(deliveries.c.campaign == "promo")).scalar()
    assert 0 < planned < expected["targeted"] + len(expected["held_out"])
    # Resumed: the customers already in the ledger now look like a cooldown to the planner; the
    # history must not count them so (nor count anyone twice).
    run_occurrence(make_runner(workspace, store, Clock(AT)), workspace.campaigns["promo"].campaign, AT)
    [row] = rows(store)
    assert row.matched == expected["matched"]
    assert row.excluded == expected["excluded"] and row.excluded["cooldown"] == 0
    assert row.targeted == expected["targeted"] and row.variants == expected["variants"]


def test_retention_drops_the_history_of_old_occurrences_with_the_events(store, workspace):
    shop(store, 10)
    for days in (40, 10):
        at = AT - timedelta(days=days)
        run_occurrence(make_runner(workspace, store, Clock(at)), workspace.campaigns["promo"].campaign, at)
    assert len(rows(store)) == 2
    with store.engine.begin() as conn:
        apply_retention(conn, timedelta(days=30), AT)
    assert [r.occurrence for r in rows(store)] == [(AT - timedelta(days=10)).replace(tzinfo=None)]
