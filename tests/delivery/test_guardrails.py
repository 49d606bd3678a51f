"""Guardrails that a plausible one-line change would break, each pinned by what a user would see.

Every test here was checked by making that change once and watching it fail (see the notes in
the test names)."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from engine.audience.planner import Planner
from engine.core.errors import UserInputError
from engine.delivery.daemon import Daemon
from engine.delivery.occurrence import run_occurrence
from engine.ingest.importer import import_rows
from engine.messages.context import build_contexts
from engine.store.tables import customers, deliveries, occurrences
from tests.support.helpers import Clock, email_campaign, make_runner, write_workspace
from tests.support.store import NOW, seed

AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def shoppers(n: int) -> list[dict]:
    return [
        {"id": f"c{i:03d}", "first_name": f"N{i}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"}
        for i in range(n)
    ]


def dead_worker_occurrence(occurrence: datetime) -> sa.Insert:
    """An occurrence claimed by a worker on this host whose process no longer exists."""
    return sa.insert(occurrences).values(
        campaign="promo",
        occurrence=occurrence,
        status="dispatching",
        claimed_by=f"{socket.gethostname()}:999999999:dead",
        claimed_at=occurrence,
        heartbeat_at=occurrence,
    )


def rows_per_customer(store, campaign: str) -> dict[str, int]:
    with store.engine.connect() as conn:
        query = (
            sa.select(deliveries.c.customer_id, sa.func.count())
            .where(deliveries.c.campaign == campaign)
            .group_by(deliveries.c.customer_id)
        )
        return dict(conn.execute(query).all())


def test_a_held_out_customer_stays_in_cooldown_and_is_recorded_once(store, tmp_path):
    seed(store, customers=shoppers(40))
    ws = write_workspace(tmp_path, [email_campaign(holdout="50%", cooldown="7d")])
    campaign = ws.campaigns["promo"].campaign
    for day in range(3):  # three daily ticks inside the cooldown
        at = AT + timedelta(days=day)
        run_occurrence(make_runner(ws, store, Clock(at)), campaign, at)
    counts = rows_per_customer(store, "promo")
    assert len(counts) == 40 and set(counts.values()) == {1}  # the control group does not grow per tick
    with store.engine.connect() as conn:
        held = conn.execute(sa.select(sa.func.count()).where(deliveries.c.status == "held_out")).scalar_one()
    assert 0 < held < 40


@pytest.mark.parametrize("status", ["pending", "sending", "unknown", "sent"])
def test_the_frequency_cap_counts_every_message_that_left_or_may_leave(store, tmp_path, status):
    seed(store, customers=shoppers(3))
    ws = write_workspace(
        tmp_path,
        [email_campaign("other"), email_campaign("promo")],
        config={"limits": {"frequency_cap": {"max": 1, "per": "7d"}}},
    )
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(deliveries).values(
                campaign="other",
                customer_id="c000",
                occurrence=(AT - timedelta(days=1)).replace(tzinfo=None),
                status=status,
                counts_toward_cap=True,
                created_at=NOW.replace(tzinfo=None),
                updated_at=NOW.replace(tzinfo=None),
            )
        )
    with store.engine.connect() as conn:
        plan = Planner(conn=conn, config=ws.config, segments={}, at=AT).plan(ws.campaigns["promo"].campaign)
    assert plan.excluded["frequency_cap"] == 1 and sorted(plan.targeted) == ["c001", "c002"]


def test_the_daemon_runs_due_campaigns_highest_priority_first(store, tmp_path):
    seed(store, customers=shoppers(5))
    ws = write_workspace(
        tmp_path,
        [
            email_campaign("aardvark", priority=1, schedule={"every": "1h"}),
            email_campaign("zebra", priority=99, schedule={"every": "1h"}),
        ],
        config={"limits": {"frequency_cap": {"max": 1, "per": "7d"}}},
    )
    clock = Clock(AT + timedelta(minutes=1))
    Daemon(runner=make_runner(ws, store, clock), started_at=clock.now).step(clock.now)
    assert rows_per_customer(store, "zebra") == {c["id"]: 1 for c in shoppers(5)}
    assert rows_per_customer(store, "aardvark") == {}  # alphabetical order would have let it win


def test_last_event_in_a_template_never_comes_from_after_the_run_instant(store, tmp_path):
    seed(store, customers=[{"id": "c1"}])
    seed(
        store,
        events=[
            {
                "customer_id": "c1",
                "type": "product_view",
                "occurred_at": AT - timedelta(days=1),
                "properties": {"product_name": "Boots"},
            },
            {
                "customer_id": "c1",
                "type": "product_view",
                "occurred_at": AT + timedelta(hours=1),
                "properties": {"product_name": "Sandals"},
            },
        ],
    )

    campaign = write_workspace(tmp_path, [email_campaign()]).campaigns["promo"].campaign
    with store.engine.connect() as conn:
        context = build_contexts(conn, ["c1"], AT, campaign)["c1"]
    assert context["last"]["product_view"]["properties"]["product_name"] == "Boots"


def test_an_invalid_row_in_a_later_batch_leaves_earlier_batches_unwritten(store):
    rows = [(i, {"id": f"c{i}", "email": f"c{i}@example.com"}) for i in range(1, 26)]
    rows.append((26, {"id": "c26", "email": "not an address"}))
    with pytest.raises(UserInputError):
        import_rows(store, "customers", rows, path="<test>", untyped=False, now=NOW, batch_size=5)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one() == 0


def test_an_in_flight_row_the_connector_cannot_vouch_for_ends_unknown_and_is_not_resent(store, tmp_path):
    from tests.support.smtpserver import SmtpServer

    seed(store, customers=shoppers(3))
    with SmtpServer() as sink:
        ws = write_workspace(
            tmp_path,
            [email_campaign()],
            config={
                "email": {
                    "connector": "smtp",
                    "unsubscribe_url": "https://shop.example/u",
                    "smtp": {"host": "127.0.0.1", "port": sink.port},
                }
            },
        )
        campaign = ws.campaigns["promo"].campaign
        occurrence = AT.replace(tzinfo=None)
        with store.engine.begin() as conn:  # a worker on this host that died mid-batch
            conn.execute(dead_worker_occurrence(occurrence))
            for cid, state in (("c000", "sending"), ("c001", "sent"), ("c002", "pending")):
                conn.execute(
                    sa.insert(deliveries).values(
                        campaign="promo",
                        customer_id=cid,
                        occurrence=occurrence,
                        status=state,
                        email=f"{cid}@example.com",
                        actions="0",
                        claim="old" if state == "sending" else None,
                        handed_at=occurrence if state == "sending" else None,  # it reached the connector
                        counts_toward_cap=True,
                        created_at=occurrence,
                        updated_at=occurrence,
                    )
                )
        report = run_occurrence(make_runner(ws, store, Clock(AT)), campaign, AT)
        received = [m["To"] for m in sink.recorder.messages]
    with store.engine.connect() as conn:
        final = dict(conn.execute(sa.select(deliveries.c.customer_id, deliveries.c.status)).all())
    assert final == {"c000": "unknown", "c001": "sent", "c002": "sent"}
    assert report.counts == {"sent": 1} and len(received) == 1  # only the pending one went out


def test_a_row_claimed_but_never_handed_to_the_connector_goes_back_to_pending_and_is_sent_once(store, tmp_path):
    """The store went away (or the worker died) between claiming a batch and sending it."""
    seed(store, customers=shoppers(2))
    ws = write_workspace(tmp_path, [email_campaign()])
    campaign = ws.campaigns["promo"].campaign
    occurrence = AT.replace(tzinfo=None)
    with store.engine.begin() as conn:
        conn.execute(dead_worker_occurrence(occurrence))
        for cid in ("c000", "c001"):
            conn.execute(
                sa.insert(deliveries).values(
                    campaign="promo",
                    customer_id=cid,
                    occurrence=occurrence,
                    status="sending",
                    email=f"{cid}@example.com",
                    actions="0",
                    claim="old",
                    counts_toward_cap=True,
                    created_at=occurrence,
                    updated_at=occurrence,
                )
            )
    report = run_occurrence(make_runner(ws, store, Clock(AT)), campaign, AT)
    assert report.counts == {"sent": 2}
    with store.engine.connect() as conn:
        assert set(conn.execute(sa.select(deliveries.c.status)).scalars()) == {"sent"}
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2


def test_a_replay_looks_back_only_while_a_delivery_plan_looks_both_ways(store, tmp_path):
    seed(store, customers=shoppers(1))
    ws = write_workspace(tmp_path, [email_campaign(cooldown="7d")])
    with store.engine.begin() as conn:  # the campaign reached c000 a day after the instant we replay
        conn.execute(
            sa.insert(deliveries).values(
                campaign="promo",
                customer_id="c000",
                occurrence=(AT + timedelta(days=1)).replace(tzinfo=None),
                status="sent",
                created_at=NOW.replace(tzinfo=None),
                updated_at=NOW.replace(tzinfo=None),
            )
        )
    campaign = ws.campaigns["promo"].campaign
    with store.engine.connect() as conn:
        replay = Planner(conn=conn, config=ws.config, segments={}, at=AT).plan(campaign)
        planning = Planner(conn=conn, config=ws.config, segments={}, at=AT, lookahead=True).plan(campaign)
    assert replay.targeted == ["c000"]  # what that instant saw
    assert planning.targeted == [] and planning.excluded["cooldown"] == 1  # never twice within a cooldown
