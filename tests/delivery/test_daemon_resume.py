"""A daemon step runs each open occurrence once: a tick it has just run and left open (rows
waiting for the customer's morning) is not taken over again by the same step's resume."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

import engine.delivery.occurrence as occurrence
from engine.delivery.daemon import Daemon
from engine.store.tables import deliveries
from tests.support.helpers import Clock, email_campaign, make_runner, write_workspace
from tests.support.store import seed

AT = datetime(2026, 6, 1, 9, 0, 30, tzinfo=timezone.utc)  # 18:00 in Tokyo: quiet there
PEOPLE = [
    {"id": "tokyo", "email": "t@example.com", "email_opt_in": True, "country": "US", "timezone": "Asia/Tokyo"},
    {"id": "london", "email": "l@example.com", "email_opt_in": True, "country": "US", "timezone": "Europe/London"},
]


def test_a_tick_left_waiting_is_not_taken_over_by_its_own_step(store, tmp_path, monkeypatch):
    seed(store, customers=PEOPLE)
    ws = write_workspace(
        tmp_path, [email_campaign()], config={"limits": {"quiet_hours": {"start": "17:00", "end": "09:00"}}}
    )
    takeovers = []
    settle = occurrence.reconcile
    monkeypatch.setattr(
        occurrence,
        "reconcile",
        lambda runner, campaign, claim: (takeovers.append(claim), settle(runner, campaign, claim)),
    )
    clock = Clock(AT)
    daemon = Daemon(runner=make_runner(ws, store, clock), started_at=AT)
    assert [r.counts for r in daemon.step(AT)] == [{"sent": 1}]
    assert takeovers == []  # a takeover would settle the occurrence's rows a second time
    with store.engine.connect() as conn:
        waiting = conn.execute(sa.select(deliveries.c.customer_id).where(deliveries.c.status == "pending")).all()
    assert waiting == [("tokyo",)]
    # Tokyo's morning: a later step resumes the occurrence and sends the rest.
    clock.advance(timedelta(hours=15))
    later = daemon.step(clock())
    assert {"sent": 1} in [r.counts for r in later]
