"""The standard campaigns of `nudge init` run together, as a shop would run them: their comments
are promises ("one win-back offer at a time"), checked over two weeks of daily runs."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from engine.delivery.runs import run_campaigns
from engine.ingest.demo import build_demo
from engine.store.tables import coupons
from engine.workspace.loader import load_workspace
from tests.support.helpers import Clock, make_runner

AT = datetime(2026, 6, 1, 10, 0, tzinfo=timezone.utc)
WINBACK = {"winback", "comeback"}  # lapsed-buyers' 15% and churn-winback's 20%


def test_one_win_back_offer_at_a_time_across_two_weeks_of_the_standard_campaigns(store, workspace_dir):
    workspace = load_workspace(workspace_dir)
    build_demo(store, AT, size=1500)
    clock = Clock(AT)
    runner = make_runner(workspace, store, clock)
    for day in range(14):
        clock.now = AT + timedelta(days=day)
        summary = run_campaigns(runner, workspace.select(), clock.now)
        assert not summary.failures, summary.failures
    with store.engine.connect() as conn:
        issued = conn.execute(
            sa.select(coupons.c.customer_id, coupons.c.name, coupons.c.created_at).where(coupons.c.name.in_(WINBACK))
        ).all()
    offers: dict[str, list] = defaultdict(list)
    for row in issued:
        offers[row.customer_id].append(row)
    assert len(offers) > 50  # both campaigns did reach people: the check below is not empty
    assert {row.name for row in issued} == WINBACK
    # Nobody holds two win-back offers from the two campaigns within 60 days of each other.
    doubled = [
        customer
        for customer, rows in offers.items()
        if any(a.name != b.name and abs(a.created_at - b.created_at) < timedelta(days=60) for a in rows for b in rows)
    ]
    assert doubled == []
