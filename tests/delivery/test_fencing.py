"""Never twice, never lost, with real processes: a worker paused past its lease hands off nothing
(fencing), and an SMTP server that drops connections leaves `unknown` only for messages that may
have arrived. Both databases."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from engine.delivery.occurrence import run_occurrence
from engine.store.tables import deliveries
from tests.support.helpers import (
    Clock,
    email_campaign,
    make_runner,
    nudge_process,
    smtp_config,
    stop,
    store_at_rest,
    write_workspace,
    writer_open,
)
from tests.support.smtpserver import Drop, DroppingSmtpServer, SmtpServer
from tests.support.store import make_store, seed

AT = "2026-06-01T12:00:00+00:00"
LEASE_SECONDS = 2
# About 40 ms a render: a batch of 40 takes long enough to pause a worker in the middle of it.
SLOW_TEMPLATE = f"{{% for i in '{'i' * 1000}' %}}{{% for j in '{'j' * 1100}' %}}{{% endfor %}}{{% endfor %}}<p>Hi</p>\n"


def customers(count: int) -> list[dict]:
    return [
        {"id": f"c{i:04d}", "first_name": f"N{i}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"}
        for i in range(count)
    ]


def smtp_workspace(root: Path, store_url: str, port: int, template: str, batch_size: int) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "templates").mkdir()
    config = smtp_config(store_url, port, batch_size=batch_size, lease=f"{LEASE_SECONDS}s")
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    campaign = {
        "campaign": "blast",
        "schedule": "0 12 * * *",
        "audience": {"attribute": "country", "eq": "US"},
        "actions": [
            {"coupon": {"name": "promo", "percent_off": 10, "valid_for": "7d"}},
            {"email": {"template": "blast.html.j2", "subject": "Hi {{ customer.first_name }}"}},
        ],
    }
    (root / "rules" / "blast.yaml").write_text(yaml.safe_dump(campaign))
    (root / "templates" / "blast.html.j2").write_text(template)
    return root


def nudge_run(ws: Path) -> subprocess.Popen:
    return nudge_process(ws, "run", "--at", AT)


def rows(store) -> list:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(deliveries)).all()


def pause_with_a_batch_in_hand(process: subprocess.Popen, store) -> None:
    """SIGSTOP the run while it holds a claimed batch of which nothing is handed over yet (it
    renders it: seconds, with SLOW_TEMPLATE), and in no write transaction (the run taking over
    would wait on it). Judged with the run stopped, so the judgement stays true; a run caught
    elsewhere (its batch already leaving, a commit) goes on and is caught at its next batch."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it was caught with a batch in hand"
        if any(r.status == "sending" for r in rows(store)):
            stop(process.pid)
            store_at_rest(store)
            claimed = [r for r in rows(store) if r.status == "sending"]
            if claimed and all(r.handed_at is None for r in claimed) and not writer_open(store):
                return
            process.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the run was never caught with a claimed batch in hand")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_worker_paused_past_its_lease_hands_off_nothing(kind, tmp_path, request):
    store = make_store(kind, tmp_path, request)
    seed(store, customers=customers(120))
    with SmtpServer() as server:
        ws = smtp_workspace(tmp_path / "ws", store.url, server.port, SLOW_TEMPLATE, batch_size=40)
        paused = nudge_run(ws)
        try:
            pause_with_a_batch_in_hand(paused, store)
            time.sleep(LEASE_SECONDS + 1)  # past the lease: the occurrence is up for takeover
            taker = nudge_run(ws)
            _, err = taker.communicate(timeout=120)
            assert taker.returncode == 0, err.decode()
            assert len(server.recorder.messages) == 120
        finally:
            paused.send_signal(signal.SIGCONT)
        _, err = paused.communicate(timeout=120)
        received = [m["To"] for m in server.recorder.messages]
    # The paused worker woke up with 40 rendered messages in hand and sent none of them.
    assert len(received) == 120 and len(set(received)) == 120
    assert paused.returncode == 1 and "another worker took over" in err.decode()
    final = rows(store)
    assert [r.status for r in final].count("sent") == 120
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM coupons")).scalar() == 120
    store.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_smtp_drops_leave_unknown_only_where_the_message_may_have_arrived(kind, tmp_path, request):
    store = make_store(kind, tmp_path, request)
    seed(store, customers=customers(400))
    with DroppingSmtpServer(rate=0.06) as server:
        ws = smtp_workspace(tmp_path / "ws", store.url, server.port, "<p>Hi {{ customer.first_name }}</p>\n", 100)
        for _ in range(20):  # a run that meets a server dropping too often stops; the next resumes
            run = nudge_run(ws)
            _, err = run.communicate(timeout=120)
            if run.returncode == 0:
                break
            assert "sending stopped" in err.decode(), err.decode()
        assert run.returncode == 0, err.decode()
        recorder = server.recorder
    cuts = recorder.cuts
    assert cuts[Drop.RCPT] and cuts[Drop.DATA_COMMAND] and cuts[Drop.AFTER_DATA]  # every kind happened
    final = rows(store)
    by_status: dict[str, set[str]] = {}
    for row in final:
        by_status.setdefault(row.status, set()).add(str(row.id))
    assert set(by_status) <= {"sent", "unknown"}  # nothing pending, stuck or failed
    assert len(recorder.arrived) == len(set(recorder.arrived))  # nobody twice
    # `unknown` exactly where the server took the text and the answer was lost; the rest `sent`.
    assert by_status.get("unknown", set()) == set(recorder.answer_lost)
    assert by_status["sent"] == set(recorder.arrived) - set(recorder.answer_lost)
    assert len(final) == 400
    store.dispose()


def test_on_sqlite_the_hand_off_commits_with_a_full_sync_and_the_rest_without(sqlite_store, tmp_path):
    seed(sqlite_store, customers=customers(5))
    workspace = write_workspace(tmp_path / "ws", [email_campaign("promo")])
    seen: dict[str, int] = {}

    @sa.event.listens_for(sqlite_store.engine, "before_cursor_execute")
    def watch(conn, cursor, statement, parameters, context, executemany):
        # 2 is FULL (the commit flushes the WAL to disk), 1 is NORMAL.
        level = cursor.connection.execute("PRAGMA synchronous").fetchone()[0]
        if statement.startswith("UPDATE deliveries SET handed_at"):
            seen["hand-off"] = level
        elif statement.startswith("INSERT INTO deliveries"):
            seen["plan"] = level

    runner = make_runner(workspace, sqlite_store, Clock(datetime(2026, 6, 1, 12, tzinfo=timezone.utc)))
    report = run_occurrence(runner, workspace.campaigns["promo"].campaign, runner.clock())
    assert report.counts == {"sent": 5}
    assert seen == {"hand-off": 2, "plan": 1}
