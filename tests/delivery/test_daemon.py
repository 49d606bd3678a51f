"""The daemon with a fake clock: ticks, catch-up once, reloads, bad templates; real processes for
SIGTERM and the SQLite single-daemon lock; two daemons racing on one PostgreSQL store."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
import yaml

from engine.delivery.daemon import AlreadyRunning, Daemon, lock_sqlite
from engine.store.tables import deliveries, occurrences
from tests.support.helpers import Clock, email_campaign, make_runner, write_workspace
from tests.support.store import ROOT, make_store, seed

START = datetime(2026, 6, 1, 9, 3, tzinfo=timezone.utc)


def people(n: int) -> list[dict]:
    return [
        {"id": f"c{i:04d}", "first_name": f"N{i}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"}
        for i in range(n)
    ]


def occurrence_times(store, campaign: str) -> list[datetime]:
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(occurrences.c.occurrence)
                .where(occurrences.c.campaign == campaign)
                .order_by(occurrences.c.occurrence)
            ).scalars()
        )


def daemon_for(ws, store, clock: Clock, started: datetime | None = None, **kwargs) -> Daemon:
    return Daemon(runner=make_runner(ws, store, clock, **kwargs), started_at=started or clock.now)


def test_runs_each_tick_once_and_catches_up_once_after_downtime(store, tmp_path):
    seed(store, customers=people(3))
    ws = write_workspace(tmp_path, [email_campaign(schedule={"every": "1h"}, cooldown="0d")])
    clock = Clock(START)
    daemon = daemon_for(ws, store, clock)
    daemon.step(clock.now)  # 09:00 is within the first-run grace
    for _ in range(8):  # every 15 minutes until 11:03
        clock.advance(timedelta(minutes=15))
        daemon.step(clock.now)
    assert [t.strftime("%H:%M") for t in occurrence_times(store, "promo")] == ["09:00", "10:00", "11:00"]
    clock.advance(timedelta(hours=3, minutes=20))  # down across 12:00, 13:00, 14:00
    restarted = daemon_for(ws, store, clock)
    restarted.step(clock.now)
    restarted.step(clock.now)
    assert [t.strftime("%H:%M") for t in occurrence_times(store, "promo")] == ["09:00", "10:00", "11:00", "14:00"]
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 12


def test_edited_rules_are_picked_up_and_a_broken_edit_keeps_the_last_good_version(store, tmp_path, caplog):
    seed(store, customers=people(2))
    ws = write_workspace(tmp_path, [email_campaign(schedule={"every": "1h"})])
    clock = Clock(START)
    daemon = daemon_for(ws, store, clock)
    rule = tmp_path / "rules" / "promo.yaml"
    broken = yaml.safe_load(rule.read_text())
    broken["schedule"] = {"every": "soon"}
    rule.write_text(yaml.safe_dump(broken))
    with caplog.at_level(logging.ERROR, logger="nudge.daemon"):
        daemon.step(clock.now)
    assert f"{rule}:" in caplog.text and "invalid duration 'soon'" in caplog.text
    assert occurrence_times(store, "promo") == [datetime(2026, 6, 1, 9, 0)]  # the old version still ran
    fixed = email_campaign("promo", schedule={"every": "1h"}, enabled=False)
    rule.write_text(yaml.safe_dump(fixed))
    clock.advance(timedelta(hours=1))
    daemon.step(clock.now)
    assert daemon.enabled() == [] and len(occurrence_times(store, "promo")) == 1


def test_a_broken_template_is_recorded_and_other_campaigns_keep_going(store, tmp_path):
    seed(store, customers=people(2))
    bad = email_campaign("bad", schedule={"every": "1h"}, priority=90)
    bad["actions"][0]["email"]["subject"] = "{{ last.purchase.properties.amount }}"
    ws = write_workspace(tmp_path, [bad, email_campaign("good", schedule={"every": "1h"})])
    clock = Clock(START)
    daemon_for(ws, store, clock).step(clock.now)
    with store.engine.connect() as conn:
        rows = Counter((r.campaign, r.status) for r in conn.execute(sa.select(deliveries)))
    assert rows == {("bad", "failed"): 2, ("good", "sent"): 2}


def test_two_daemons_on_one_postgresql_store_never_double_send(tmp_path, request):
    from tests.support.smtpserver import SmtpServer

    store = make_store("postgresql", tmp_path, request)
    seed(store, customers=people(600))
    with SmtpServer() as sink:
        # A real SMTP sink records every message that arrives (the outbox would overwrite a
        # duplicate file under the same name and hide it).
        ws = write_workspace(
            tmp_path,
            [
                email_campaign("a", schedule={"every": "1h"}, cooldown="0d"),
                email_campaign("b", schedule={"every": "30m"}, cooldown="0d", priority=5),
            ],
            config={
                "store": store.url,
                "email": {
                    "connector": "smtp",
                    "unsubscribe_url": "https://shop.example/unsubscribe",
                    "smtp": {"host": "127.0.0.1", "port": sink.port},
                },
            },
        )
        clocks = [Clock(START), Clock(START)]
        stores = [make_store_copy(store) for _ in clocks]
        daemons = [daemon_for(ws, s, c, batch_size=25) for s, c in zip(stores, clocks, strict=False)]
        for _ in range(4):  # four rounds, both daemons at the same instant
            barrier = threading.Barrier(2)
            errors: list[BaseException] = []

            def step(daemon: Daemon, clock: Clock) -> None:
                try:
                    barrier.wait()  # noqa: B023 (joined within the same round)
                    daemon.step(clock.now)
                except BaseException as exc:  # surfaced below
                    errors.append(exc)  # noqa: B023

            threads = [threading.Thread(target=step, args=(d, c)) for d, c in zip(daemons, clocks, strict=False)]
            [t.start() for t in threads]
            [t.join(120) for t in threads]
            assert not errors
            [c.advance(timedelta(minutes=30)) for c in clocks]
        for daemon in daemons:
            daemon.runner.outputs.close()
        received = [(m["X-Nudge-Delivery"], m["To"]) for m in sink.recorder.messages]
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.id, deliveries.c.status)).all()
    assert len(rows) == 600 * (2 + 4) and {r.status for r in rows} == {"sent"}
    assert len(received) == len(set(received)) == len(rows)  # every message arrived exactly once
    assert {int(d) for d, _ in received} == {r.id for r in rows}
    assert len(occurrence_times(store, "a")) == 2 and len(occurrence_times(store, "b")) == 4
    for s in stores:
        s.dispose()
    store.dispose()


def make_store_copy(store):
    from engine.store import open_store

    return open_store(store.url, create=False)


def _daemon_process(ws) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "--workspace", str(ws), "daemon"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NUDGE_SECRET": "s"},
    )


def test_sigterm_finishes_the_batch_in_hand_and_exits_0(tmp_path, request):
    store = make_store("sqlite", tmp_path, request)
    seed(store, customers=people(3000))
    ws = write_workspace(tmp_path, [email_campaign(schedule={"every": "1m"})], config={"store": store.url})
    with store.engine.begin() as conn:  # it ran before: the daemon catches up at once
        conn.execute(
            sa.insert(occurrences).values(
                campaign="promo",
                occurrence=datetime(2026, 1, 1),
                status="done",
                claimed_by="x",
                claimed_at=datetime(2026, 1, 1),
                heartbeat_at=datetime(2026, 1, 1),
            )
        )
    process = _daemon_process(ws.root)
    outbox = tmp_path / "outbox"
    deadline = time.monotonic() + 180  # a bound for a loaded machine: the loop ends at the first file
    while not list(outbox.glob("*.eml")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    # Sending: the SIGTERM below reaches the daemon's handler, in the middle of the occurrence.
    assert list(outbox.glob("*.eml")) and process.poll() is None, "the daemon never started sending"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    assert "SIGTERM: finishing the batch in hand" in err.decode()
    with store.engine.connect() as conn:
        statuses = Counter(conn.execute(sa.select(deliveries.c.status)).scalars())
    assert "sending" not in statuses and statuses["sent"] == len(list(outbox.glob("*.eml")))
    assert statuses["sent"] < 3000  # it stopped early; the rest waits, pending
    store.dispose()


def test_a_second_daemon_on_sqlite_refuses_to_start(tmp_path, request):
    store = make_store("sqlite", tmp_path, request)
    ws = write_workspace(tmp_path, [email_campaign()], config={"store": store.url})
    held = lock_sqlite(store.url)
    try:
        with pytest.raises(AlreadyRunning):
            lock_sqlite(store.url)
        second = _daemon_process(ws.root)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert "another nudge daemon is already running" in err.decode() and "Traceback" not in err.decode()
    finally:
        held.close()
    store.dispose()


def test_a_template_broken_on_disk_keeps_its_campaign_running(store, tmp_path, caplog):
    seed(store, customers=people(2))
    ws = write_workspace(tmp_path, [email_campaign(schedule={"every": "1h"}, cooldown="0d")])
    clock = Clock(START)
    daemon = daemon_for(ws, store, clock)
    (tmp_path / "templates" / "hello.html.j2").write_text("<p>{% if %}</p>\n")
    with caplog.at_level(logging.ERROR, logger="nudge.daemon"):
        daemon.step(clock.now)
    assert "hello.html.j2:1: error: template syntax error" in caplog.text
    assert [c.campaign for c in daemon.enabled()] == ["promo"]  # not silently dropped
