"""SIGKILL a real `nudge run` at several points, restart it, and check at the sink: nobody twice,
nobody silently dropped. On SQLite and PostgreSQL; through the outbox and a real SMTP server."""

from __future__ import annotations

import email
import subprocess
from email import policy
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from engine.store.tables import deliveries
from tests.support.helpers import kill_when, nudge_process
from tests.support.smtpserver import SmtpServer
from tests.support.store import make_store, seed

AT = "2026-06-01T12:00:00+00:00"
CUSTOMERS = 2500


def workspace(root: Path, store_url: str, email_config: dict) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump({"store": store_url, "timezone": "UTC", "email": email_config}))
    (root / "rules" / "blast.yaml").write_text(
        yaml.safe_dump(
            {
                "campaign": "blast",
                "schedule": "0 12 * * *",
                "audience": {"attribute": "country", "eq": "US"},
                "holdout": "5%",
                "actions": [
                    {"coupon": {"name": "promo", "percent_off": 10, "valid_for": "7d"}},
                    {"email": {"template": "blast.html.j2", "subject": "Hi {{ customer.first_name }}"}},
                ],
            }
        )
    )
    (root / "templates" / "blast.html.j2").write_text("<p>Your code {{ coupons.promo.code }}</p>\n")
    return root


def start_run(ws: Path) -> subprocess.Popen:
    return nudge_process(ws, "run", "--at", AT)


def ledger(store) -> dict[str, tuple[int, str]]:
    with store.engine.connect() as conn:
        return {r.customer_id: (r.id, r.status) for r in conn.execute(sa.select(deliveries))}


def crash_and_recover(store, ws: Path, progress, kill_points: list[int]) -> int:
    kills = 0
    planning = lambda: len(ledger(store)) > 0  # noqa: E731  in phase 1
    for point in [None, *kill_points]:
        process = start_run(ws)
        reached = planning if point is None else (lambda p=point: progress() >= p)
        kills += kill_when(process, reached)
    final = start_run(ws)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    return kills


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sigkill_during_an_outbox_run_never_duplicates_or_drops(kind, tmp_path, request):
    store = make_store(kind, tmp_path, request)
    seed(
        store,
        customers=[
            {
                "id": f"c{i:05d}",
                "first_name": f"N{i}",
                "email": f"c{i}@example.com",
                "email_opt_in": True,
                "country": "US",
            }
            for i in range(CUSTOMERS)
        ],
    )
    ws = workspace(tmp_path / "ws", store.url, {"connector": "outbox", "outbox": {"dir": "outbox"}})
    outbox = ws / "outbox"
    kills = crash_and_recover(store, ws, lambda: len(list(outbox.glob("*.eml"))), [1, 400, 1100, 1900])
    assert kills >= 3
    files = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in outbox.glob("*.eml")]
    recipients = [m["To"] for m in files]
    assert len(recipients) == len(set(recipients))  # nobody twice
    rows = ledger(store)
    statuses = [status for _, status in rows.values()]
    assert set(statuses) <= {"sent", "failed", "unknown", "held_out"}  # nothing stuck in between
    assert statuses.count("sent") == len(files)  # the ledger and the sink agree
    sent_ids = {str(i) for i, s in rows.values() if s == "sent"}
    assert {m["X-Nudge-Delivery"] for m in files} == sent_ids
    assert len(rows) == CUSTOMERS  # everyone targeted is recorded
    assert statuses.count("unknown") == 0  # the outbox can always tell
    store.dispose()


def test_sigkill_during_an_smtp_run_leaves_unknown_never_a_resend(tmp_path, request):
    store = make_store("sqlite", tmp_path, request)
    seed(
        store,
        customers=[
            {
                "id": f"c{i:05d}",
                "first_name": f"N{i}",
                "email": f"c{i}@example.com",
                "email_opt_in": True,
                "country": "US",
            }
            for i in range(CUSTOMERS)
        ],
    )
    with SmtpServer() as server:
        ws = workspace(
            tmp_path / "ws",
            store.url,
            {
                "connector": "smtp",
                "unsubscribe_url": "https://shop.example/unsubscribe",
                "smtp": {"host": "127.0.0.1", "port": server.port, "timeout": 10},
            },
        )
        kills = crash_and_recover(store, ws, lambda: len(server.recorder.messages), [50, 600, 1500])
        received = [m["To"] for m in server.recorder.messages]
    assert kills >= 2
    assert len(received) == len(set(received))  # nobody twice
    rows = ledger(store)
    by_address = {f"c{int(cid[1:])}@example.com": status for cid, (_, status) in rows.items()}
    assert set(by_address.values()) <= {"sent", "failed", "unknown", "held_out"}
    assert all(by_address[address] in ("sent", "unknown") for address in received)
    missing = [a for a, status in by_address.items() if status == "sent" and a not in received]
    assert missing == []  # "sent" means it arrived
    store.dispose()
