"""Exclusive groups (`exclusive: GROUP`, `limits.exclusive: {GROUP: DURATION}`): at most one
campaign of the group reaches a customer within the window — in one dry run, across days, and
when two processes plan at the same instant. Both databases."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from engine.audience.planner import Planner
from engine.cli.main import main
from engine.delivery.occurrence import run_occurrence
from engine.ingest.demo import build_demo
from engine.store.tables import coupons, deliveries
from engine.workspace.loader import load_workspace
from tests.support.helpers import Clock, email_campaign, make_runner, nudge_process, write_workspace
from tests.support.store import ROOT, make_store, seed

AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
GROUP = {"limits": {"exclusive": {"winback": "60d"}}}


def shoppers(n: int = 30) -> list[dict]:
    return [{"id": f"c{i:02d}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"} for i in range(n)]


def offers(**overrides) -> list[dict]:
    return [
        email_campaign("big-offer", priority=60, exclusive="winback", **overrides),
        email_campaign("small-offer", priority=50, exclusive="winback", **overrides),
    ]


def test_in_one_dry_run_the_higher_priority_takes_everyone_and_the_other_counts_them(store, tmp_path):
    seed(store, customers=shoppers())
    ws = write_workspace(tmp_path, offers(), config=GROUP)
    with store.engine.connect() as conn:
        planner = Planner(conn=conn, config=ws.config, segments=ws.segments, at=AT)
        first, second = (planner.plan(c) for c in ws.select())
    assert first.campaign == "big-offer" and len(first.targeted) == 30
    assert second.targeted == [] and second.excluded["exclusive"] == 30
    assert "exclusive" in second.as_json()["excluded"]


def test_across_days_the_window_holds_and_then_lets_the_next_one_in(store, tmp_path):
    seed(store, customers=shoppers(10))
    ws = write_workspace(tmp_path, offers(cooldown="0d"), config=GROUP)
    big, small = ws.select()
    runner = make_runner(ws, store, Clock(AT))
    assert run_occurrence(runner, big, AT).counts == {"sent": 10}
    later = AT + timedelta(days=59)
    assert run_occurrence(runner, small, later).counts == {}  # everyone excluded: within 60 days
    after = AT + timedelta(days=61)
    assert run_occurrence(runner, small, after).counts == {"sent": 10}
    with store.engine.connect() as conn:
        groups = set(conn.execute(sa.select(deliveries.c.exclusive_group)).scalars())
    assert groups == {"winback"}


def test_a_journey_enters_under_the_group_and_its_later_steps_go_on(store, tmp_path):
    seed(store, customers=shoppers(5))
    journey = {
        "campaign": "journey",
        "schedule": "0 9 * * *",
        "priority": 40,
        "exclusive": "winback",
        "audience": {"attribute": "country", "eq": "US"},
        "steps": [
            {"name": "offer", "actions": [{"email": {"template": "hello.html.j2", "subject": "Offer"}}]},
            {"name": "reminder", "wait": "1d", "actions": [{"email": {"template": "hello.html.j2", "subject": "R"}}]},
        ],
    }
    ws = write_workspace(tmp_path, [journey, email_campaign("one-off", priority=90, exclusive="winback")], config=GROUP)
    one_off, offer, reminder = ws.select()
    runner = make_runner(ws, store, Clock(AT))
    run_occurrence(runner, offer, AT)  # the journey enters first (the one-off did not run yet)
    assert run_occurrence(runner, one_off, AT + timedelta(hours=1)).counts == {}  # the journey's offer counts
    assert run_occurrence(runner, reminder, AT + timedelta(days=1)).counts == {"sent": 5}  # a step of the same offer


def test_an_undeclared_group_is_an_error_at_the_rule_line(workspace_dir):
    rule = workspace_dir / "rules" / "lapsed-buyers.yaml"
    rule.write_text(rule.read_text().replace("exclusive: winback", "exclusive: winbak"))
    result = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "validate"])
    assert result.exit_code == 2
    assert f"{rule}:6:12: error: exclusive group 'winbak' is not in config.yaml limits.exclusive" in result.stderr


def test_a_config_that_does_not_load_does_not_also_make_every_group_undeclared(workspace_dir):
    config = workspace_dir / "config.yaml"
    config.write_text(config.read_text() + "tasks_x: 1\n")
    result = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "validate"])
    assert result.exit_code == 2 and "unknown field 'tasks_x'" in result.stderr
    assert "exclusive group" not in result.stderr


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_processes_planning_the_group_at_once_give_nobody_two_offers(kind, tmp_path, request):
    store = make_store(kind, tmp_path, request)
    seed(store, customers=shoppers(300))
    ws = write_workspace(
        tmp_path / "ws",
        offers(),
        config={**GROUP, "store": store.url, "email": {"connector": "outbox", "outbox": {"dir": "outbox"}}},
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "engine", "--workspace", str(ws.root), "run", name, "--at", AT.isoformat()],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "NUDGE_SECRET": "s"},
        )
        for name in ("small-offer", "big-offer")
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()
    with store.engine.connect() as conn:
        sent = conn.execute(sa.select(deliveries.c.customer_id).where(deliveries.c.status == "sent")).scalars().all()
    per_customer = Counter(sent)
    assert len(per_customer) == 300 and set(per_customer.values()) == {1}  # everyone once, nobody twice
    store.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_standard_win_back_campaigns_in_two_concurrent_runs_give_nobody_both_offers(
    kind, tmp_path, request, workspace_dir
):
    """The standard churn-winback (20%, at risk) and lapsed-buyers (15%, lapsed) meet across time:
    who enters the journey today may be lapsed in 30 days, inside the group's 60. Two `nudge run`
    processes plan today and in 30 days at once, each both campaigns."""
    store = make_store(kind, tmp_path, request)
    today = datetime(2026, 6, 1, 2, 0, tzinfo=timezone.utc)
    later = today + timedelta(days=30)
    build_demo(store, today, size=600)
    config = yaml.safe_load((workspace_dir / "config.yaml").read_text())
    (workspace_dir / "config.yaml").write_text(yaml.safe_dump({**config, "store": store.url}))
    contested = _offered_both_without_the_group(store, workspace_dir, today, later)
    assert len(contested) >= 10  # the check below is not empty
    runs = [
        nudge_process(workspace_dir, "run", "churn-winback", "lapsed-buyers", "--at", at.isoformat())
        for at in (today, later)
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()
    with store.engine.connect() as conn:
        held = conn.execute(sa.select(coupons.c.customer_id, coupons.c.name).where(coupons.c.name.in_(WINBACK))).all()
    offers: dict[str, set[str]] = {}
    for customer_id, name in held:
        offers.setdefault(customer_id, set()).add(name)
    assert {name for names in offers.values() for name in names} == set(WINBACK)  # both campaigns gave offers
    assert [c for c, names in offers.items() if len(names) > 1] == []  # 0 customers with two offers
    assert sum(1 for c in contested if c in offers) >= len(contested) // 2  # the contested got one of them
    store.dispose()


WINBACK = ("comeback", "winback")  # churn-winback's 20% coupon, lapsed-buyers' 15%


def _offered_both_without_the_group(store, root, today: datetime, later: datetime) -> set[str]:
    """Who the journey would enter today and lapsed-buyers would reach in 30 days, each planned alone
    on the empty ledger: the customers the group has to keep from getting both offers."""
    workspace = load_workspace(root)
    journey, lapsed = workspace.campaigns["churn-winback"].campaign, workspace.campaigns["lapsed-buyers"].campaign
    offer = next(c for c in workspace.select([journey.campaign]) if c.campaign.endswith("/offer"))
    with store.engine.connect() as conn:
        entering = Planner(conn=conn, config=workspace.config, segments=workspace.segments, at=today).plan(offer)
        reached = Planner(conn=conn, config=workspace.config, segments=workspace.segments, at=later).plan(lapsed)
    return set(entering.targeted) & set(reached.targeted)
