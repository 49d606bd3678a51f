"""A campaign that fails on its data (a value the database refuses to compare) is logged on one
line, counted in /metrics and paused, while the other campaigns go on; never a traceback, never a
false "store unreachable"; once the data is fixed it resumes and the count drops, on both
databases."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from engine.delivery.daemon import Daemon
from engine.store.tables import deliveries, occurrences
from engine.web.observe import metrics_text
from tests.support.helpers import Clock, email_campaign, make_runner, write_workspace
from tests.support.store import seed

START = datetime(2026, 6, 1, 9, 3, tzinfo=timezone.utc)
SPENDERS = {"event": "purchase", "sum": {"of": "amount", "gte": 100}}


def people(n: int) -> list[dict]:
    return [{"id": f"c{i}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"} for i in range(n)]


def store_unreadable_amount(store) -> None:
    """What an older nudge let in: a 401-digit amount (PostgreSQL cannot read it as a number) or
    Infinity (SQLite cannot read it as JSON). Written past the importer, which now refuses both."""
    if store.dialect == "postgresql":
        properties, cast = '{"amount": ' + "9" * 401 + "}", "CAST(:p AS JSONB)"
    else:
        properties, cast = '{"amount": Infinity}', ":p"
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO events (event_key, customer_id, type, occurred_at, properties) "
                f"VALUES ('bad', 'c0', 'purchase', :t, {cast})"
            ),
            {"t": datetime(2026, 5, 1), "p": properties},
        )


def statuses(store) -> dict[str, list[str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.campaign, deliveries.c.status)).all()
    found: dict[str, list[str]] = {}
    for campaign, status in rows:
        found.setdefault(campaign, []).append(status)
    return found


def failing_line(store, clock) -> list[str]:
    text = metrics_text(store, clock).decode()
    return [line for line in text.splitlines() if line.startswith("nudge_occurrences_failing{")]


def test_a_campaign_failing_on_its_data_is_logged_counted_paused_and_resumed(store, tmp_path, caplog):
    seed(store, customers=people(3))
    store_unreadable_amount(store)
    hourly = {"schedule": {"every": "1h"}, "cooldown": "0d"}
    ws = write_workspace(
        tmp_path, [email_campaign("spenders", SPENDERS, priority=90, **hourly), email_campaign("promo", **hourly)]
    )
    clock = Clock(START)
    daemon = Daemon(runner=make_runner(ws, store, clock), started_at=clock.now)
    with caplog.at_level(logging.INFO, logger="nudge.daemon"):
        daemon.step(clock.now)  # before: PostgreSQL's DataError ended the daemon, SQLite's looped as an outage
    assert statuses(store) == {"promo": ["sent"] * 3}
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("spenders")]
    assert line.startswith("spenders at 2026-06-01T09:00:00+00:00 failed (")
    assert line.endswith("): the other campaigns go on; retried in 1m") and "9999" not in line
    assert "Traceback" not in caplog.text and "unreachable" not in caplog.text
    assert failing_line(store, clock) == ['nudge_occurrences_failing{campaign="spenders"} 1.0']

    caplog.clear()
    clock.advance(timedelta(seconds=30))
    with caplog.at_level(logging.ERROR, logger="nudge.daemon"):
        daemon.step(clock.now)  # paused: not retried every step
    assert not any(r.getMessage().startswith("spenders") for r in caplog.records)

    with store.engine.begin() as conn:  # the operator fixes the data
        conn.execute(sa.text("DELETE FROM events WHERE event_key = 'bad'"))
    clock.advance(timedelta(minutes=1))
    daemon.step(clock.now)
    with store.engine.connect() as conn:
        phases = dict(conn.execute(sa.select(occurrences.c.campaign, occurrences.c.status)).all())
    assert phases == {"spenders": "done", "promo": "done"}
    assert failing_line(store, clock) == []


def test_a_campaign_failing_while_it_sends_leaves_nothing_stuck_and_the_others_run(store, tmp_path, monkeypatch):
    from engine.delivery import dispatch

    seed(store, customers=people(3))
    calls = {
        "campaign": "calls",
        "schedule": {"every": "1h"},
        "priority": 90,
        "audience": {"attribute": "country", "eq": "US"},
        "actions": [{"task": {"queue": "care", "title": "Call {{ customer.id }}", "due_in": "1d"}}],
    }
    ws = write_workspace(tmp_path, [calls, email_campaign("promo", schedule={"every": "1h"})])
    clock = Clock(START)
    daemon = Daemon(runner=make_runner(ws, store, clock), started_at=clock.now)
    real_task_row = dispatch.task_row
    failures = iter([OverflowError("date value out of range")])  # what due_in: 99999999d once did

    def task_row(*args, **kwargs):
        for failure in failures:
            raise failure
        return real_task_row(*args, **kwargs)

    monkeypatch.setattr(dispatch, "task_row", task_row)
    daemon.step(clock.now)
    assert statuses(store)["promo"] == ["sent"] * 3  # the other campaign ran
    assert failing_line(store, clock) == ['nudge_occurrences_failing{campaign="calls"} 1.0']
    clock.advance(timedelta(minutes=1))
    daemon.step(clock.now)  # resumed after its pause: the rows it held are settled and sent
    assert sorted(statuses(store)["calls"]) == ["sent"] * 3
    assert failing_line(store, clock) == []
