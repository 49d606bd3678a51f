"""`delivery.workers: 2` with real `nudge run` processes on SQLite and PostgreSQL: two OS processes
really send at the same time, nobody gets a message twice, and a worker (or the whole run)
SIGKILLed mid-batch leaves nothing that a rerun does not finish exactly once."""

from __future__ import annotations

import email
import json
import os
import signal
import subprocess
import threading
import time
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from engine.store.tables import deliveries
from tests.support.helpers import nudge_process, stop, store_at_rest
from tests.support.store import make_store, seed

AT = "2026-06-01T12:00:00+00:00"


def customers(count: int) -> list[dict]:
    return [
        {"id": f"c{i:05d}", "first_name": f"N{i}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"}
        for i in range(count)
    ]


def workspace(root: Path, store_url: str, action: dict, **config) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "templates").mkdir()
    settings = {"store": store_url, "timezone": "UTC", "delivery": {"workers": 2, "batch_size": 20}, **config}
    (root / "config.yaml").write_text(yaml.safe_dump(settings))
    rule = {
        "campaign": "blast",
        "schedule": "0 12 * * *",
        "audience": {"attribute": "country", "eq": "US"},
        "actions": [{"coupon": {"name": "promo", "percent_off": 10, "valid_for": "7d"}}, action],
    }
    (root / "rules" / "blast.yaml").write_text(yaml.safe_dump(rule))
    (root / "templates" / "blast.html.j2").write_text("<p>Your code {{ coupons.promo.code }}</p>\n")
    (root / "templates" / "crm.json.j2").write_text('{"customer": {{ customer.id | tojson }}}\n')
    return root


EMAIL = {"email": {"template": "blast.html.j2", "subject": "Hi {{ customer.first_name }}"}}


def statuses(store) -> dict[str, str]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.customer_id, deliveries.c.status)).all()
    assert len(rows) == len({r.customer_id for r in rows})
    return {r.customer_id: r.status for r in rows}


def run_to_end(ws: Path) -> None:
    final = nudge_process(ws, "run", "--at", AT)
    _, err = final.communicate(timeout=180)
    assert final.returncode == 0, err.decode()


# How long the first call waits for the other worker's: a bound, not a measure (the wait ends
# when the second call arrives). The other worker may still be claiming, rendering and marking its
# first batch on a loaded machine; under the connector's 30 s read timeout, so the held call is
# not given up by its sender.
MEETING_WAIT = 25


class _Meeting(ThreadingHTTPServer):
    """A webhook receiver that notes whether two calls were ever open at the same moment. Each
    call waits (up to MEETING_WAIT, once) for a second one to arrive before it answers; one
    process sends its calls one by one, so only two processes sending at once can meet."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.condition = threading.Condition()
        self.open_calls = 0
        self.met = False
        self.gave_up = False
        self.customers: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: _Meeting

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        meeting = self.server
        with meeting.condition:
            meeting.open_calls += 1
            meeting.met = meeting.met or meeting.open_calls >= 2
            meeting.condition.notify_all()
            if not meeting.condition.wait_for(lambda: meeting.met or meeting.gave_up, timeout=MEETING_WAIT):
                meeting.gave_up = True  # alone: no point making every later call wait too
            meeting.open_calls -= 1
            meeting.customers.append(body["customer"])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_workers_send_at_the_same_time_and_each_customer_once(kind, tmp_path, request):
    store = make_store(kind, tmp_path, request)
    seed(store, customers=customers(60))
    server = _Meeting()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ws = workspace(tmp_path / "ws", store.url, {"webhook": {"url_env": "CRM_URL", "body": "crm.json.j2"}})
        env = {"CRM_URL": f"http://127.0.0.1:{server.server_address[1]}/", "NUDGE_WEBHOOK_SECRET": "w"}
        process = nudge_process(ws, "run", "--at", AT, env=env)
        _, err = process.communicate(timeout=180)
    finally:
        server.shutdown()
    assert process.returncode == 0, err.decode()
    assert server.met  # two calls open at once: two processes sending
    assert sorted(server.customers) == sorted(c["id"] for c in customers(60))  # everyone, each once
    assert set(statuses(store).values()) == {"sent"}
    store.dispose()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def outbox_files(outbox: Path) -> list:
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in outbox.glob("*.eml")]


def check_outbox_once(store, outbox: Path, count: int) -> None:
    files = outbox_files(outbox)
    recipients = [m["To"] for m in files]
    assert len(recipients) == len(set(recipients)) == count  # everyone, nobody twice
    assert set(statuses(store).values()) == {"sent"}  # nothing stuck in between; the outbox can always tell


def wait_for_files(process: subprocess.Popen, outbox: Path, count: int) -> None:
    while len(list(outbox.glob("*.eml"))) < count:
        assert process.poll() is None, "the run ended before the kill point"
        time.sleep(0.002)


CRASH_CUSTOMERS = 2000


def holders(store) -> set[int]:
    """The pids holding `sending` rows: each row's claim token is host:pid:random."""
    with store.engine.connect() as conn:
        tokens = conn.execute(
            sa.select(deliveries.c.claim).where(deliveries.c.status == "sending").distinct()
        ).scalars()
        return {int(token.split(":")[1]) for token in tokens}


def kill_one_mid_batch(store, process: subprocess.Popen, workers: list[int]) -> int:
    """SIGKILL a worker while it holds a claimed batch; its pid. Both are stopped (really: not
    just signalled) and PostgreSQL has finished whatever they had sent it (a COMMIT of their
    results could otherwise land after the look) before the ledger is read, so the one found
    holding rows cannot settle them before the kill lands. Between batches a worker holds
    nothing: then both go on and we look again a moment later."""
    for _ in range(2000):
        assert process.poll() is None, "the run ended before a worker was caught mid-batch"
        stop(*workers)
        store_at_rest(store)
        busy = [pid for pid in workers if pid in holders(store)]
        if busy:
            os.kill(busy[0], signal.SIGKILL)
        for pid in workers:
            if not busy or pid != busy[0]:
                os.kill(pid, signal.SIGCONT)
        if busy:
            return busy[0]
        time.sleep(0.005)
    raise AssertionError("no worker was ever caught holding a batch")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_one_worker_killed_fails_the_run_clearly_and_a_rerun_sends_the_rest_once(kind, tmp_path, request):
    store = make_store(kind, tmp_path, request)
    seed(store, customers=customers(CRASH_CUSTOMERS))
    ws = workspace(tmp_path / "ws", store.url, EMAIL)
    outbox = ws / "outbox"
    process = nudge_process(ws, "run", "--at", AT)
    wait_for_files(process, outbox, 200)
    workers = children_of(process.pid)
    assert len(workers) == 2
    killed = kill_one_mid_batch(store, process, workers)
    _, err = process.communicate(timeout=180)
    assert process.returncode == 1
    assert f"pid {killed}) died (killed by SIGKILL)" in err.decode()
    # The dead worker's batch is still in flight, and only its: the other finished the batch in hand.
    assert holders(store) == {killed}
    run_to_end(ws)
    check_outbox_once(store, outbox, CRASH_CUSTOMERS)
    store.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_whole_run_killed_mid_batch_takes_its_workers_and_a_rerun_sends_everyone_once(kind, tmp_path, request):
    store = make_store(kind, tmp_path, request)
    seed(store, customers=customers(CRASH_CUSTOMERS))
    ws = workspace(tmp_path / "ws", store.url, EMAIL)
    outbox = ws / "outbox"
    for kill_at in (100, 900):
        process = nudge_process(ws, "run", "--at", AT)
        wait_for_files(process, outbox, kill_at)
        workers = children_of(process.pid)
        assert len(workers) == 2
        process.send_signal(signal.SIGKILL)  # the parent only: its workers must not outlive it
        process.wait()
        for pid in workers:
            while alive(pid):
                time.sleep(0.01)
        # Workers that outlived their run would have gone on to send everyone.
        left = set(statuses(store).values())
        assert "sent" in left and left != {"sent"}
    run_to_end(ws)
    check_outbox_once(store, outbox, CRASH_CUSTOMERS)
    store.dispose()
