"""A triggered campaign end to end, as it runs for real: events posted over HTTP to a running
`nudge serve`, a running `nudge daemon` sending one email per trigger after the delay, and none
when the purchase came first (the event-to-inbox latency is printed, never asserted). And every
trigger answered exactly once when an import commits its events long after it wrote them, while
other events are committed and occurrences run in the meantime (real processes, PostgreSQL)."""

from __future__ import annotations

import email
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from email import policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.audience.trigger import fix_horizon
from engine.core.clock import naive_utc
from engine.delivery.ledger import claim_occurrence
from engine.delivery.occurrence import run_occurrence
from engine.store.tables import deliveries, events, occurrences
from tests.support.helpers import Clock, make_runner, wait_until, write_workspace
from tests.support.pgserver import free_port
from tests.support.store import ROOT, make_store, seed
from tests.web.test_ingest_api import KEY, Served

CART = {
    "campaign": "cart-reminder",
    "trigger": {"event": "add_to_cart", "delay": "2s", "not_followed_by": {"type": "checkout", "same": ["cart_id"]}},
    "cooldown": "0d",
    "audience": {"not": {"event": "purchase", "within": "1h"}},
    "actions": [
        {"email": {"template": "cart.html.j2", "subject": "Still want {{ trigger.properties.product_name }}?"}}
    ],
}


def track(server: Served, user: str, event: str, message_id: str, ago: float = 0, **properties) -> None:
    stamp = (datetime.now(timezone.utc) - timedelta(seconds=ago)).isoformat()
    body = {"userId": user, "event": event, "messageId": message_id, "timestamp": stamp, "properties": properties}
    assert server.post("/v1/track", body)[0] == 200


def inbox(folder) -> list:
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(folder.glob("*.eml"))]


def answers(server: Served) -> bool:
    try:
        return server.post("/v1/track", {}, key="probe")[0] == 401
    except OSError:
        return False


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_one_email_per_trigger_after_the_delay_and_none_after_a_purchase(kind, tmp_path, request):
    store = make_store(kind, tmp_path, request)
    seed(
        store,
        customers=[
            {"id": "ann", "first_name": "Ann", "email": "ann@example.com", "email_opt_in": True},
            {"id": "ben", "first_name": "Ben", "email": "ben@example.com", "email_opt_in": True},
            {"id": "cy", "first_name": "Cy", "email": "cy@example.com", "email_opt_in": True},
        ],
    )
    ws = write_workspace(
        tmp_path / "ws",
        [CART],
        config={
            "store": store.url,
            "email": {"connector": "outbox", "outbox": {"dir": "outbox"}},
            "ingest": {"write_key_env": "SHOP_WRITE_KEY"},
        },
        templates={
            "cart.html.j2": "<p>{{ trigger.properties.product_name }} is waiting, {{ customer.first_name }}</p>"
        },
    )
    outbox = ws.root / "outbox"
    env = {**os.environ, "NUDGE_SECRET": "s", "SHOP_WRITE_KEY": KEY}
    port = free_port()
    command = [sys.executable, "-m", "engine", "--workspace", str(ws.root)]
    serve = subprocess.Popen([*command, "serve", "--port", str(port)], cwd=ROOT, env=env, stderr=subprocess.PIPE)
    daemon = subprocess.Popen([*command, "daemon"], cwd=ROOT, env=env, stderr=subprocess.PIPE)
    server = Served(port)
    try:
        assert wait_until(lambda: answers(server), 120), "nudge serve did not start"  # bounds, not timings
        posted = time.monotonic()
        track(server, "ann", "Product Added", "m-1", product_name="Boots", cart_id="k1")
        track(server, "ben", "Product Added", "m-2", product_name="Scarf", cart_id="k2")
        track(server, "ben", "checkout", "m-3", cart_id="k2")  # this cart was bought before the delay ended
        assert wait_until(lambda: len(inbox(outbox)) >= 1, 180), "no email after the delay"
        latency = time.monotonic() - posted
        time.sleep(8)  # a few more daemon ticks: nothing else may leave
        first = inbox(outbox)
        assert [(m["To"], m["Subject"]) for m in first] == [("ann@example.com", "Still want Boots?")]

        # Ann checks out the boots and leaves a hat; the hat is reminded, the boots are not.
        track(server, "ann", "checkout", "m-5", cart_id="k1")
        track(server, "ann", "Product Added", "m-4", product_name="Hat", cart_id="k3")  # a new trigger
        track(server, "ann", "Product Added", "m-4", product_name="Hat", cart_id="k3")  # retried: same event
        # An event that reaches the store 40 s late (a collector retrying): taken by the next occurrence.
        track(server, "cy", "Product Added", "m-6", ago=40, product_name="Gloves", cart_id="k7")
        assert wait_until(lambda: len(inbox(outbox)) >= 3, 180), [m["Subject"] for m in inbox(outbox)]
        time.sleep(8)
        sent = sorted((m["To"], m["Subject"]) for m in inbox(outbox))
        assert sent == [
            ("ann@example.com", "Still want Boots?"),
            ("ann@example.com", "Still want Hat?"),
            ("cy@example.com", "Still want Gloves?"),
        ]
        print(f"\nevent posted → email in the outbox: {latency:.1f} s (delay 2s, settle 5s, poll 5s)")
    finally:
        for process in (daemon, serve):
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.customer_id, deliveries.c.status)).all()
    assert sorted(rows) == [("ann", "sent"), ("ann", "sent"), ("cy", "sent")]


# Trigger events happen in the five minutes before START; occurrences run a minute apart after it.
START = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
REMIND = {
    "campaign": "remind",
    "trigger": {"event": "add_to_cart", "delay": "1m"},
    "cooldown": "0d",
    "audience": {"not": {"event": "purchase", "within": "1h"}},
    "actions": [{"task": {"queue": "carts", "title": "Call {{ customer.id }}"}}],
}


def cart(cid: str, moment: datetime) -> dict:
    return {"id": f"cart-{cid}", "customer_id": cid, "type": "add_to_cart", "occurred_at": moment}


def answered(store) -> list[tuple[str, datetime]]:
    """(customer, occurrence) of every ledger row of the campaign: one per answered trigger."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.customer_id, deliveries.c.occurrence).where(deliveries.c.campaign == "remind")
        ).all()
    return sorted((cid, occurrence) for cid, occurrence in rows)


def test_an_occurrence_resumed_later_answers_what_it_first_saw_and_the_next_one_the_rest(store, tmp_path):
    seed(store, customers=[{"id": "c1"}, {"id": "c2"}], events=[cart("c1", START - timedelta(minutes=1))])
    ws = write_workspace(tmp_path / "ws", [REMIND])
    runner = make_runner(ws, store, Clock(START))
    first, second = START + timedelta(minutes=2), START + timedelta(minutes=3)
    claim_occurrence(store.engine, "remind", naive_utc(first), runner.worker, START)
    with store.engine.begin() as conn:  # planning began, then the process stopped
        fix_horizon(conn, "remind", naive_utc(first))
    seed(store, events=[cart("c2", START - timedelta(seconds=30))])  # stored before it resumes
    for at in (first, second, second + timedelta(minutes=1)):
        run_occurrence(runner, ws.campaigns["remind"].campaign, at)
    assert answered(store) == [("c1", naive_utc(first)), ("c2", naive_utc(second))]


def test_an_occurrence_planned_after_a_later_one_takes_no_trigger_the_later_ones_take(store, tmp_path):
    """Claimed first, planned last (stopped, or waiting for the planning lock while the next
    occurrence planned): horizons must still grow in occurrence order, or a trigger stored in
    between is taken by it and again by the occurrence after the next."""
    ids = ["c1", "c2"]
    seed(store, customers=[{"id": c} for c in ids], events=[cart("c1", START - timedelta(minutes=1))])
    ws = write_workspace(tmp_path / "ws", [REMIND])
    runner = make_runner(ws, store, Clock(START))
    campaign = ws.campaigns["remind"].campaign
    first, second, third = (START + timedelta(minutes=n) for n in (2, 3, 4))
    claim_occurrence(store.engine, "remind", naive_utc(first), runner.worker, START)
    run_occurrence(runner, campaign, second)
    seed(store, events=[cart("c2", START - timedelta(seconds=30))])  # late, and within the first's window
    run_occurrence(runner, campaign, first)
    run_occurrence(runner, campaign, third)
    assert answered(store) == [("c1", naive_utc(first)), ("c2", naive_utc(third))]


def test_postgresql_rows_from_before_0008_events_without_a_transaction_and_a_watermark(pg_store, tmp_path):
    """Events stored before revision 0008 have no xid: every snapshot sees them. An occurrence
    planned before it has a watermark and no snapshot: what it took is read by its watermark."""
    ids = ["c1", "c2", "c3"]
    seed(pg_store, customers=[{"id": c} for c in ids], events=[cart(c, START - timedelta(minutes=1)) for c in ids[:2]])
    before = START + timedelta(minutes=2)
    with pg_store.engine.begin() as conn:
        conn.execute(sa.update(events).values(xid=None))
        seen = conn.execute(sa.select(events.c.pk).where(events.c.customer_id == "c1")).scalar_one()
        conn.execute(  # it saw c1's event only, and answered it
            sa.insert(occurrences).values(
                campaign="remind",
                occurrence=naive_utc(before),
                status="done",
                claimed_by="old",
                claimed_at=naive_utc(START),
                heartbeat_at=naive_utc(START),
                watermark=seen,
            )
        )
    seed(pg_store, events=[cart("c3", START - timedelta(seconds=30))])
    ws = write_workspace(tmp_path / "ws", [REMIND])
    after = before + timedelta(minutes=1)
    run_occurrence(make_runner(ws, pg_store, Clock(START)), ws.campaigns["remind"].campaign, after)
    assert answered(pg_store) == [("c2", naive_utc(after)), ("c3", naive_utc(after))]


def cart_events(file: Path, ids: list[str]) -> Path:
    with file.open("w") as out:
        for n, cid in enumerate(ids):
            moment = START - timedelta(seconds=300 * n / len(ids))
            row = {"id": f"cart-{cid}", "customer_id": cid, "type": "add_to_cart", "occurred_at": moment.isoformat()}
            out.write(json.dumps(row) + "\n")
    return file


def nudge(ws: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "engine", "--workspace", str(ws), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NUDGE_SECRET": "s"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def next_line(process: subprocess.Popen, seconds: float = 60) -> str:
    """The next line a process prints, waited for (at most `seconds`)."""
    ready, _, _ = select.select([process.stdout], [], [], seconds)
    assert ready, "the import printed nothing"
    return process.stdout.readline().strip()


def test_triggers_committed_late_by_a_slow_import_are_answered_once_on_postgresql(tmp_path, request):
    """PostgreSQL numbers events as they are written but shows them when they commit: an import
    holding 500 written events while other events commit and two occurrences run loses none."""
    store = make_store("postgresql", tmp_path, request)
    imported = [f"i{n:04d}" for n in range(1000)]
    live_a = [f"a{n:03d}" for n in range(100)]
    live_b = [f"b{n:03d}" for n in range(100)]
    seed(store, customers=[{"id": cid} for cid in imported + live_a + live_b])
    ws = write_workspace(tmp_path / "ws", [REMIND], config={"store": store.url}).root
    at = [(START + timedelta(minutes=2 + n)).isoformat() for n in range(4)]
    slow = subprocess.Popen(
        [sys.executable, "-m", "tests.support.paused_import", "250", "--workspace", str(ws), "import", "events"]
        + [str(cart_events(tmp_path / "imported.jsonl", imported))],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert next_line(slow) == "written 250"  # its first batch, numbered and not committed
        nudge(ws, "import", "events", str(cart_events(tmp_path / "a.jsonl", live_a)))
        nudge(ws, "run", "remind", "--at", at[0])
        slow.stdin.write("\n")
        slow.stdin.flush()
        assert next_line(slow) == "written 250"
        nudge(ws, "import", "events", str(cart_events(tmp_path / "b.jsonl", live_b)))
        nudge(ws, "run", "remind", "--at", at[1])
        _, err = slow.communicate("", timeout=120)  # end of input: the last two batches, then commit
        assert slow.returncode == 0, err
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.communicate()
    nudge(ws, "run", "remind", "--at", at[2])
    nudge(ws, "run", "remind", "--at", at[3])
    rows = answered(store)
    store.dispose()
    times = Counter(cid for cid, _ in rows)
    lost = set(imported + live_a + live_b) - set(times)
    assert (len(lost), sorted(lost)[:3]) == (0, [])
    assert [cid for cid, count in times.items() if count > 1] == []
    by_occurrence = Counter(occurrence for _, occurrence in rows)
    instants = [datetime.fromisoformat(t).replace(tzinfo=None) for t in at]
    assert [by_occurrence[t] for t in instants] == [100, 100, 1000, 0]
