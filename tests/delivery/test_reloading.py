"""Reloading rules never holds the scheduler back: a slow load runs beside the ticks (which go on
with the rules loaded before), and a hostile rule file dropped into a running daemon is refused in
milliseconds and bounded memory, while a healthy campaign keeps its ticks and SIGTERM is honoured."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
import yaml

from engine.delivery.daemon import Daemon
from engine.delivery.reloading import Reloader, signature
from engine.store.tables import occurrences
from tests.rules.test_yamlsource import laughs
from tests.support.helpers import Clock, email_campaign, make_runner, wait_until, write_workspace
from tests.support.store import ROOT, make_store, seed

START = datetime(2026, 6, 1, 9, 3, tzinfo=timezone.utc)
PEOPLE = [{"id": "c1", "email": "c1@example.com", "email_opt_in": True, "country": "US"}]


def ticks(store, campaign: str) -> int:
    with store.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(occurrences).where(occurrences.c.campaign == campaign)
        return conn.execute(query).scalar_one()


def test_a_slow_reload_does_not_hold_the_ticks_back(store, tmp_path, caplog):
    seed(store, customers=PEOPLE)
    ws = write_workspace(tmp_path, [email_campaign(schedule={"every": "1h"}, cooldown="0d")])
    clock = Clock(START)
    daemon = Daemon(runner=make_runner(ws, store, clock), started_at=clock.now)
    release, loaded = threading.Event(), threading.Event()

    def slow_load():  # a template that renders for minutes, a disk that stalls
        release.wait(60)
        rules = daemon.load_rules()
        loaded.set()
        return rules

    daemon.reloader = Reloader(ws.root, slow_load, wait=0.2, seen=signature(ws.root))
    (tmp_path / "rules" / "other.yaml").write_text(yaml.safe_dump(email_campaign("other", schedule={"every": "1h"})))
    with caplog.at_level(logging.WARNING, logger="nudge.daemon"):
        daemon.step(clock.now)
    # The step ran and returned while the load was still held (it ends only when released, or
    # after a minute): a step that waited for it would come back after it.
    assert not loaded.is_set()
    assert "reloading rules takes longer than 0.2s: campaigns run on the rules loaded before" in caplog.text
    assert ticks(store, "promo") == 1 and [c.campaign for c in daemon.enabled()] == ["promo"]
    release.set()
    clock.advance(timedelta(hours=1))
    daemon.step(clock.now)  # the load has ended: its rules apply from this step
    assert [c.campaign for c in daemon.enabled()] == ["other", "promo"]
    assert ticks(store, "promo") == 2 and ticks(store, "other") == 1


def test_a_billion_laughs_file_dropped_into_a_running_daemon(tmp_path, request):
    store = make_store("sqlite", tmp_path, request)
    seed(store, customers=PEOPLE)
    # A triggered campaign makes the daemon step every few seconds; the healthy one ticks each second.
    healthy = email_campaign("healthy", schedule={"every": "1s"}, cooldown="0d")
    waiting = email_campaign("waiting", trigger={"event": "add_to_cart", "delay": "1h"})
    del waiting["schedule"]
    ws = write_workspace(tmp_path, [healthy, waiting], config={"store": store.url})
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "--workspace", str(ws.root), "daemon"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NUDGE_SECRET": "s"},
    )
    try:
        assert wait_until(lambda: ticks(store, "healthy") >= 1, 180)  # bounds, not timings
        (tmp_path / "rules" / "laughs.yaml").write_text(laughs())
        dropped = ticks(store, "healthy")
        assert wait_until(lambda: ticks(store, "healthy") >= dropped + 3, 180), "the healthy campaign stopped ticking"
        with open(f"/proc/{process.pid}/status") as status:
            peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        assert peak_kib < 400 * 1024, f"peak memory {peak_kib} KiB"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err.decode()
    text = err.decode()
    assert f"{tmp_path / 'rules' / 'laughs.yaml'}:6:15: error: more than 20,000 values once aliases" in text
    assert "Traceback" not in text
    store.dispose()
