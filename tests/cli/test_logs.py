"""`--log-format json`: a real daemon's log is one JSON object per line, with the campaign, the
occurrence and the counts, and never a customer's address or a token."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import sqlalchemy as sa

from engine.store.tables import occurrences
from tests.support.helpers import email_campaign, write_workspace
from tests.support.store import ROOT, make_store, seed


def test_a_daemon_logs_json_lines_without_addresses(tmp_path, request):
    store = make_store("sqlite", tmp_path, request)
    seed(
        store,
        customers=[
            {"id": f"c{i}", "email": f"person{i}@example.com", "email_opt_in": True, "country": "US"} for i in range(5)
        ],
    )
    with store.engine.begin() as conn:  # it ran before: the daemon catches up at once
        moment = datetime(2026, 1, 1)
        conn.execute(
            sa.insert(occurrences).values(
                campaign="promo",
                occurrence=moment,
                status="done",
                claimed_by="x",
                claimed_at=moment,
                heartbeat_at=moment,
            )
        )
    ws = write_workspace(
        tmp_path / "ws",
        [email_campaign(schedule={"every": "1h"})],
        config={"store": store.url, "email": {"connector": "outbox", "outbox": {"dir": "outbox"}}},
    )
    store.dispose()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "engine", "--workspace", str(ws.root), "daemon", "--log-format", "json"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NUDGE_SECRET": "top-secret-token"},
    )
    try:
        deadline = time.monotonic() + 180  # a bound for a loaded machine: the loop ends at the fifth file
        while len(list((ws.root / "outbox").glob("*.eml"))) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        # All five out: the occurrence's batch is in hand, and a SIGTERM lets it end and be logged.
        assert len(list((ws.root / "outbox").glob("*.eml"))) >= 5, "the daemon never sent"
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    text = err.decode()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    run = next(line for line in lines if line.get("campaign") == "promo")
    assert run["counts"]["sent"] == 5 and run["counts"]["matched"] == 5 and run["occurrence"]
    assert "example.com" not in text and "top-secret-token" not in text and "\x1b[" not in text


def test_serve_logs_json_lines_with_access_fields_and_no_migration_chatter(tmp_path):
    from tests.support.helpers import wait_until
    from tests.support.pgserver import free_port

    ws = write_workspace(tmp_path / "ws", [email_campaign()], config={"store": "sqlite:///nudge.db"})
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "--workspace",
            str(ws.root),
            "serve",
            "--port",
            str(port),
            "--log-format",
            "json",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    import urllib.error
    import urllib.request

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return True
        except OSError:
            return False

    try:
        assert wait_until(answers, 120)  # a bound for a loaded machine, not a timing
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope?token=abc", timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404 and json.loads(exc.read())["error"]
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    lines = [json.loads(line) for line in err.decode().splitlines()]  # every line is one JSON object
    assert not [line for line in lines if line["logger"].startswith("alembic")]
    start = next(line for line in lines if line["message"].startswith("serving on"))
    assert start["port"] == port
    access = [line for line in lines if line["logger"] == "nudge.serve.access"]
    missing = next(line for line in access if line["path"] == "/nope")
    assert missing["method"] == "GET" and missing["status"] == 404 and missing["duration_ms"] >= 0
    assert "abc" not in err.decode()
