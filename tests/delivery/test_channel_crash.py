"""SIGKILL a real `nudge run` in the middle of a batch of texts (Twilio) or webhook calls, run it
again, and count at the receiving server: everyone got exactly one message, nobody a second, and
the ledger says `unknown` exactly for what was in flight when the sender died (handed over, its
answer never recorded), never resending it blindly. Both databases, with one dispatch process and
with `delivery.workers: 2` (the parent killed; its workers die with it)."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from engine.store.tables import coupons, deliveries
from tests.support.helpers import nudge_process
from tests.support.store import make_store, seed
from tests.support.twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer
from tests.support.webhook_server import Received, Stall, WebhookServer

AT = "2026-06-01T12:00:00+00:00"
CUSTOMERS = 40
BATCH = 10
# Who the server takes a message from and never answers, by the number of dispatch processes; the
# run is killed once it holds all of them. One process: the 15th customer (5th of the second
# batch), killed with one batch recorded and four answered messages of the next not. Two: the 25th
# and 35th, in the third and fourth batches (rows are claimed in id order). A process never gets
# past its stalled message, so both held at once means two processes sending side by side, each
# killed with answered messages it had not recorded; the first two batches are recorded by then.
STALLED = {1: ("c014",), 2: ("c024", "c034")}
# A bound on reaching the stalled messages (start-up, planning, the batches before), not a measure:
# the wait ends as soon as they are all held. Generous for a loaded machine.
REACH_SECONDS = 120
TWILIO_SECRETS = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}


def shoppers() -> list[dict]:
    return [
        {"id": f"c{i:03d}", "first_name": f"N{i}", "phone": phone(f"c{i:03d}"), "sms_opt_in": True, "country": "CN"}
        for i in range(CUSTOMERS)
    ]


def phone(customer: str) -> str:
    return f"+86138{int(customer[1:]):08d}"


def workspace(root: Path, store_url: str, message: dict, workers: int, sms: dict | None = None) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "templates").mkdir()
    delivery = {"batch_size": BATCH, "workers": workers}
    config = {"store": store_url, "timezone": "UTC", "delivery": delivery, **({"sms": sms} if sms else {})}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    rule = {
        "campaign": "blast",
        "schedule": "0 12 * * *",
        "audience": {"attribute": "country", "eq": "CN"},
        "actions": [{"coupon": {"name": "promo", "percent_off": 10, "valid_for": "7d"}}, message],
    }
    (root / "rules" / "blast.yaml").write_text(yaml.safe_dump(rule))
    (root / "templates" / "crm.json.j2").write_text(
        '{"customer": {{ customer.id | tojson }}, "code": "{{ coupons.promo.code }}"}\n'
    )
    return root


def ledger(store) -> dict[str, tuple[str, str | None]]:
    """customer → (status, reason) of the blast's one row each."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.customer_id, deliveries.c.status, deliveries.c.reason)).all()
    assert len(rows) == len({r.customer_id for r in rows})  # one row per customer: one channel
    return {r.customer_id: (r.status, r.reason) for r in rows}


def kill_then_rerun(store, ws: Path, reached, received, env: dict) -> tuple[set[str], set[str]]:
    """Start a run, SIGKILL it once `reached()` (the server holds every stalled message), run again
    to the end. Returns who the ledger said was sent, and who the server had (`received()`), at the
    kill: every sender is held by a stalled message then, so nothing else is on its way."""
    first = nudge_process(ws, "run", "--at", AT, env=env)
    try:
        assert reached(), "the run never reached every stalled message"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    received_at_kill = set(received())
    at_kill = ledger(store)
    assert "sending" in {status for status, _ in at_kill.values()}  # killed mid-batch
    rerun = nudge_process(ws, "run", "--at", AT, env=env)
    _, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err.decode()
    return {customer for customer, (status, _) in at_kill.items() if status == "sent"}, received_at_kill


def check_ledger(
    store, received: list[str], sent_at_kill: set[str], received_at_kill: set[str], stalled: tuple[str, ...]
) -> None:
    """What the server counted against what the ledger says."""
    everyone = {f"c{i:03d}" for i in range(CUSTOMERS)}
    assert Counter(received) == Counter(everyone)  # every customer exactly once at the server
    rows = ledger(store)
    assert set(rows) == everyone
    by_status: dict[str, set[str]] = {}
    for customer, (status, _) in rows.items():
        by_status.setdefault(status, set()).add(customer)
    assert set(by_status) == {"sent", "unknown"}  # nothing left in `sending` or `pending`
    # In flight at the kill: handed over and taken by the server, its answer never recorded.
    assert by_status["unknown"] == received_at_kill - sent_at_kill
    assert set(stalled) <= by_status["unknown"]  # each process's own message in flight among them
    assert 0 < len(sent_at_kill) < len(received_at_kill) < CUSTOMERS  # killed mid-batch, mid-run
    assert {reason for status, reason in rows.values() if status == "unknown"} == {
        "the sender stopped while this message was in flight; it may have been delivered"
    }
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(coupons)).scalar_one() == CUSTOMERS


def customer_of(number: str) -> str:
    return f"c{int(number[-8:]):03d}"


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_twilio_killed_mid_batch_and_rerun_texts_everyone_once(kind, workers, tmp_path, request):
    store = make_store(kind, tmp_path, request)
    seed(store, customers=shoppers())
    stalled = {phone(customer) for customer in STALLED[workers]}
    with TwilioServer() as server:
        server.script.update(dict.fromkeys(stalled, "stall"))
        sms = {"connector": "twilio", "from": "+15005550006", "twilio": {"base_url": server.base_url, "timeout": 20}}
        ws = workspace(tmp_path / "ws", store.url, {"sms": {"text": "Hi {{ customer.first_name }}"}}, workers, sms)

        def reached() -> bool:
            with server.taken:
                return server.taken.wait_for(lambda: all(server.arrived(number) for number in stalled), REACH_SECONDS)

        def received() -> list[str]:
            return [customer_of(m["to"]) for m in server.accepted]

        sent_at_kill, received_at_kill = kill_then_rerun(store, ws, reached, received, TWILIO_SECRETS)
        assert server.requests == len(server.accepted)  # no request refused, none repeated
    check_ledger(store, received(), sent_at_kill, received_at_kill, STALLED[workers])
    store.dispose()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_webhook_killed_mid_batch_and_rerun_calls_once_per_customer(kind, workers, tmp_path, request):
    store = make_store(kind, tmp_path, request)
    seed(store, customers=shoppers())

    def customer(call: Received) -> str:
        return json.loads(call.body)["customer"]

    def step(call: Received) -> Stall | None:
        return Stall(processed=True) if customer(call) in STALLED[workers] else None

    with WebhookServer(step_for=step) as server:
        message = {"webhook": {"url_env": "CRM_URL", "body": "crm.json.j2"}}
        ws = workspace(tmp_path / "ws", store.url, message, workers)
        env = {"CRM_URL": server.url(), "NUDGE_WEBHOOK_SECRET": "webhook-secret"}

        def reached() -> bool:
            return server.wait_until(lambda calls: set(STALLED[workers]) <= {customer(c) for c in calls}, REACH_SECONDS)

        def received() -> list[str]:
            return [customer(r) for r in server.requests]

        sent_at_kill, received_at_kill = kill_then_rerun(store, ws, reached, received, env)
        keys = [r.key for r in server.requests]
        assert server.duplicates == 0 and len(set(keys)) == len(keys) == CUSTOMERS  # no Idempotency-Key twice
    check_ledger(store, received(), sent_at_kill, received_at_kill, STALLED[workers])
    store.dispose()
