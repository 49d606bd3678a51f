"""Outages are waits: the store going away under a running daemon, as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import sqlalchemy as sa

from engine.store import open_store
from engine.store.tables import deliveries, occurrences
from tests.support.helpers import email_campaign, wait_until, write_workspace
from tests.support.pgserver import PgServer, create_database
from tests.support.smtpserver import SmtpServer
from tests.support.store import ROOT, seed

CUSTOMERS = 1500


def test_daemon_waits_out_a_postgresql_restart_and_finishes_the_occurrence(tmp_path):
    server = PgServer().start()
    daemon = None
    try:
        store = open_store(create_database(server.url()), create=True)
        seed(
            store,
            customers=[
                {"id": f"c{i:05d}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"}
                for i in range(CUSTOMERS)
            ],
        )
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
        with SmtpServer() as sink:
            ws = write_workspace(
                tmp_path,
                [email_campaign(schedule={"every": "1h"})],
                config={
                    "store": store.url,
                    "email": {
                        "connector": "smtp",
                        "unsubscribe_url": "https://shop.example/unsubscribe",
                        "smtp": {"host": "127.0.0.1", "port": sink.port},
                    },
                    "delivery": {"batch_size": 20},
                },
            )
            store.dispose()
            daemon = subprocess.Popen(
                [sys.executable, "-m", "engine", "--workspace", str(ws.root), "daemon"],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env={**os.environ, "NUDGE_SECRET": "s"},
            )
            # The waits below are bounds on a loaded machine, not measures: each ends when its state is seen.
            assert wait_until(lambda: len(sink.recorder.messages) >= 100, 180), "the daemon never started sending"
            server.pause()
            time.sleep(3)  # the daemon meets the outage mid-occurrence and backs off
            assert daemon.poll() is None, "the daemon died when the store went away"
            server.resume()
            assert wait_until(lambda: len(sink.recorder.messages) >= CUSTOMERS - 40, 300), "it did not resume"
            check = open_store(store.url, create=False)
            assert wait_until(lambda: unfinished(check) == 0, 180)
            daemon.send_signal(signal.SIGTERM)
            _, err = daemon.communicate(timeout=60)
            log = err.decode()
            assert daemon.returncode == 0, log
            received = [m["X-Nudge-Delivery"] for m in sink.recorder.messages]
        with check.engine.connect() as conn:
            rows = {r.id: r.status for r in conn.execute(sa.select(deliveries.c.id, deliveries.c.status))}
        check.dispose()
        print(f"\noutage: {len(received)} received, ledger {sorted(set(rows.values()))}")
        assert "store unreachable" in log and "store reachable again" in log, log
        assert len(received) == len(set(received)), "a message arrived twice"
        assert len(rows) == CUSTOMERS
        assert set(rows.values()) <= {"sent", "unknown"}  # nothing pending, nothing failed for an outage
        sent = {i for i, s in rows.items() if s == "sent"}
        assert sent <= {int(d) for d in received}  # every `sent` arrived; `unknown` ones may have too
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
        server.stop()


def unfinished(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(deliveries.c.status.in_(["pending", "sending"]))
        ).scalar_one()


def _mount_tmpfs(folder, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def test_a_full_disk_leaves_messages_pending_and_a_later_run_sends_them(tmp_path):
    outbox = tmp_path / "outbox"
    if not _mount_tmpfs(outbox, "300k"):
        import pytest

        pytest.skip("cannot mount a tmpfs here (needs root); test_outbox_write_errors covers the same path")
    try:
        store = open_store(f"sqlite:///{tmp_path / 'store.db'}", create=True)
        seed(
            store,
            customers=[
                {"id": f"c{i:04d}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"}
                for i in range(1000)
            ],
        )
        ws = write_workspace(tmp_path, [email_campaign()], config={"store": store.url})
        command = [sys.executable, "-m", "engine", "--workspace", str(ws.root), "run", "--at", "2026-06-01T09:00:00Z"]
        env = {**os.environ, "NUDGE_SECRET": "s"}
        first = subprocess.run(command, cwd=ROOT, capture_output=True, env=env)
        err = first.stderr.decode()
        assert first.returncode == 1, err
        errors = [line for line in err.splitlines() if not line.startswith("warning: --at is")]  # a past --at
        assert len(errors) == 1 and "No space left on device" in errors[0], err
        assert not list(outbox.glob("*.tmp")), "half-written files left behind"
        written = len(list(outbox.glob("*.eml")))
        with store.engine.connect() as conn:
            statuses = dict(
                conn.execute(sa.select(deliveries.c.status, sa.func.count()).group_by(deliveries.c.status)).all()
            )
        assert 0 < written < 1000
        assert statuses == {"sent": written, "pending": 1000 - written}  # never `failed` for a full disk
        subprocess.run(["mount", "-o", "remount,size=20m", str(outbox)], check=True)
        second = subprocess.run(command, cwd=ROOT, capture_output=True, env=env)
        assert second.returncode == 0, second.stderr.decode()
        assert len(list(outbox.glob("*.eml"))) == 1000
        with store.engine.connect() as conn:
            assert set(conn.execute(sa.select(deliveries.c.status)).scalars()) == {"sent"}
        store.dispose()
    finally:
        subprocess.run(["umount", str(outbox)], capture_output=True)


def test_outbox_write_errors_leave_the_batch_pending(tmp_path, sqlite_store, monkeypatch):
    import errno

    import pytest

    from engine.core.errors import RuntimeFailure
    from engine.delivery.occurrence import run_occurrence
    from tests.support.helpers import Clock, make_runner

    seed(
        sqlite_store,
        customers=[
            {"id": f"c{i}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"} for i in range(9)
        ],
    )
    import connectors.outbox_files as outbox_module  # where both outboxes write their files

    ws = write_workspace(tmp_path, [email_campaign()], config={"delivery": {"batch_size": 3}})
    at = datetime(2026, 6, 1, 9, 0).astimezone()
    calls = {"n": 0}

    def full_disk(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)  # noqa: SIM115 (returned to the caller, who closes it)
        if "w" in mode:
            calls["n"] += 1
            if calls["n"] > 3:  # the second batch meets a full disk after writing part of a file
                handle.write(b"From: partial")
                handle.close()
                raise OSError(errno.ENOSPC, "No space left on device")
        return handle

    monkeypatch.setattr(outbox_module, "open", full_disk, raising=False)
    runner = make_runner(ws, sqlite_store, Clock(at))
    with pytest.raises(RuntimeFailure, match="No space left on device"):
        run_occurrence(runner, ws.campaigns["promo"].campaign, at)
    with sqlite_store.engine.connect() as conn:
        statuses = sorted(conn.execute(sa.select(deliveries.c.status)).scalars())
    assert statuses == ["pending"] * 6 + ["sent"] * 3
    assert not list((tmp_path / "outbox").glob("*.tmp"))
    monkeypatch.setattr(outbox_module, "open", open, raising=False)
    run_occurrence(runner, ws.campaigns["promo"].campaign, at)  # the same worker takes its occurrence back
    with sqlite_store.engine.connect() as conn:
        assert set(conn.execute(sa.select(deliveries.c.status)).scalars()) == {"sent"}
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 9
