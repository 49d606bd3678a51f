"""`nudge serve` as it runs in production: gunicorn, two worker processes, on 127.0.0.1, on both
stores. Events posted from several threads at once are stored exactly once (retries racing their
original in the other process included), the access log never shows a token, what the server
refuses before nudge sees a request is JSON, and SIGTERM lets a request in hand finish, then the
whole process tree exits 0. `--dev` still runs werkzeug's server."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.messages.unsubscribe import sign
from engine.store.tables import customers, events
from tests.support.helpers import wait_until, write_workspace
from tests.support.pgserver import free_port
from tests.support.store import ROOT, seed

KEY = "wk_prod_7c1e"
SECRET = "prod-secret"
# Bounded: 6 threads post 60 events, every third one twice (a retry that may land in the other
# worker while its original is still being written), spread over 5 customers none of which exist yet.
THREADS, EVENTS, CUSTOMERS = 6, 60, 5


class Served:
    """A real `nudge serve` process; its stderr goes to a file (a full pipe would stall it)."""

    def __init__(self, root: Path, *options: str, workers: int = 0, wait: bool = True, env: dict | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_file = root / "serve.log"
        command = [sys.executable, "-m", "engine", "--workspace", str(root), "serve", "--port", str(self.port)]
        with self.log_file.open("wb") as stderr:
            self.process = subprocess.Popen(
                [*command, *options],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, "NUDGE_SECRET": SECRET, "PROD_WRITE_KEY": KEY, **(env or {})},
            )
        # Up: it answers, and every worker has booted (the first may answer before the second is).
        assert not wait or wait_until(lambda: self.healthy() and len(self.workers()) == workers, 60), self.log()

    def healthy(self) -> bool:
        assert self.process.poll() is None, self.log()
        try:
            return urllib.request.urlopen(self.base + "/health", timeout=2).status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_file.read_text()

    def workers(self) -> set[int]:
        return {int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", self.log())}

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)  # to the master only, as systemd's KillMode=mixed does
        return self.process.wait(timeout=60)

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def post(self, path: str, body: object) -> tuple[int, dict]:
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode(), method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{KEY}:".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


def raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.fixture
def served(store, tmp_path):
    config = {"store": store.url, "ingest": {"write_key_env": "PROD_WRITE_KEY"}}
    ws = write_workspace(tmp_path / "ws", [], config=config)
    server = Served(ws.root, "--workers", "2", workers=2)
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait(timeout=30)


def track(n: int) -> dict:
    return {
        "type": "track",
        "userId": f"buyer-{n % CUSTOMERS}",
        "messageId": f"prod-{n}",
        "event": "Order Completed",
        "properties": {"order_id": f"o-{n}", "amount": n},
        "timestamp": "2026-06-01T09:05:00.000Z",
    }


def test_two_workers_store_concurrent_events_exactly_once_and_stop_cleanly(served, store):
    assert len(served.workers()) == 2, served.log()
    with urllib.request.urlopen(served.base + "/healthz", timeout=30) as response:
        assert json.loads(response.read())["status"] == "ok"
    posts = [n for n in range(EVENTS)] + [n for n in range(0, EVENTS, 3)]
    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(lambda n: served.post("/v1/track", track(n)), posts))
    assert {status for status, _ in answers} == {200}, [a for a in answers if a[0] != 200][:3]
    assert sum(body["events"] for _, body in answers) == EVENTS  # each retry answered, and stored nothing
    with store.engine.connect() as conn:
        keys = conn.execute(sa.select(events.c.event_key)).scalars().all()
        people = conn.execute(sa.select(customers.c.id)).scalars().all()
    assert sorted(keys) == sorted(f"id:prod-{n}" for n in range(EVENTS))
    assert sorted(people) == [f"buyer-{n}" for n in range(CUSTOMERS)]
    workers = served.workers()
    assert served.stop() == 0, served.log()
    assert "Shutting down: Master" in served.log()
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # no worker left behind


def test_the_access_log_redacts_tokens_and_what_the_server_refuses_is_json(served, store):
    seed(store, customers=[{"id": "ann", "email": "ann@example.com", "email_opt_in": True}])
    token = sign(SECRET.encode(), "ann", "ann@example.com", "promo", datetime.now(timezone.utc))
    assert served.get(f"/unsubscribe/{token}?utm_source=mail") == 200  # 303 to the preference page
    for request, status in (
        (b"POST /v1/track HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /unsubscribe/" + token.encode() + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GARBAGE /unsubscribe/" + token.encode() + b"\r\n\r\n", 400),
    ):
        head, _, body = raw(served.port, request).partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status} ".encode()) and b"Content-Type: application/json" in head, head
        assert json.loads(body)["error"] and token.encode() not in body
    assert served.stop() == 0
    logged = served.log()
    assert "GET /unsubscribe/[token]" in logged and "GET /preferences/[token]" in logged, logged
    assert token not in logged and "utm_source" not in logged


def test_sigterm_lets_a_request_in_hand_finish(served, store):
    body = json.dumps(track(1)).encode()
    auth = base64.b64encode(f"{KEY}:".encode()).decode()
    head = (
        f"POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", served.port), timeout=60) as connection:
        connection.sendall(head + body[:10])  # the worker now waits for the rest of the body
        served.process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: "Handling signal: term" in served.log(), 30), served.log()
        time.sleep(0.5)  # the master signals its workers right after it logs that: let them hear it
        connection.sendall(body[10:])
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert served.process.wait(timeout=60) == 0
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(events.c.event_key)).scalars().all() == ["id:prod-1"]


# Loaded by the served process (PYTHONPATH): every forked child pauses before it runs a line of
# its own, so a worker is still booting, without its signal handlers, when the stop reaches it.
SLOW_BOOT = "import os, time\nos.register_at_fork(after_in_child=lambda: time.sleep(1))\n"


def test_a_stop_while_workers_boot_ends_each_of_them_without_a_kill(sqlite_store, tmp_path):
    ws = write_workspace(tmp_path / "ws", [], config={"store": sqlite_store.url})
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "sitecustomize.py").write_text(SLOW_BOOT)
    server = Served(ws.root, "--workers", "2", wait=False, env={"PYTHONPATH": str(tmp_path / "slow")})
    assert wait_until(lambda: "serving on" in server.log(), 60), server.log()
    assert server.stop() == 0, server.log()
    # A worker that missed the signal serves on until the master kills it at graceful_timeout.
    exited = {int(pid) for pid in re.findall(r"Worker exiting \(pid: (\d+)\)", server.log())}
    assert len(exited) == 2 and exited == server.workers(), server.log()


def test_the_dashboard_answers_in_every_worker(workspace_dir):
    # The demo's rules: the dashboard's warm-up (every campaign counted at start) is still loading
    # them when the workers fork; one run in the master would leave its locks held in every worker.
    with (workspace_dir / "config.yaml").open("a") as config:
        config.write("\nui: {password_env: PROD_UI_PASSWORD}\n")
    server = Served(workspace_dir, "--workers", "2", workers=2, env={"PROD_UI_PASSWORD": "pw"})
    auth = {"Authorization": "Basic " + base64.b64encode(b"x:pw").decode()}

    def page(_: int) -> int:
        request = urllib.request.Request(server.base + "/ui/", headers=auth)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status

    try:  # several at once, so that both workers answer some; a worker whose dashboard is stuck times out
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(page, range(8))) == [200] * 8
    finally:
        assert server.stop() == 0


def test_dev_runs_werkzeug_and_stops_on_sigterm(sqlite_store, tmp_path):
    ws = write_workspace(tmp_path / "ws", [], config={"store": sqlite_store.url})
    server = Served(ws.root, "--dev")
    try:
        assert server.get("/nowhere") == 404
    finally:
        code = server.stop()
    assert code == 0 and "werkzeug's development server" in server.log() and "gunicorn" not in server.log()
