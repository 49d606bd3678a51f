"""Small workspaces for delivery tests, and a clock the tests move by hand."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from engine.delivery.occurrence import Runner
from engine.delivery.outlets import build_outputs
from engine.workspace.loader import Workspace, load_workspace

SIMPLE_TEMPLATE = "<p>Hi {{ customer.first_name }}</p>\n"
COUPON_TEMPLATE = "<p>Hi {{ customer.first_name }}, your code: {{ coupons.promo.code }}</p>\n"


def write_workspace(
    root: Path,
    campaigns: list[dict],
    config: dict | None = None,
    templates: dict[str, str] | None = None,
    segments: dict | None = None,
) -> Workspace:
    (root / "rules").mkdir(parents=True, exist_ok=True)
    (root / "templates").mkdir(exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump({"timezone": "UTC", **(config or {})}))
    for campaign in campaigns:
        (root / "rules" / f"{campaign['campaign']}.yaml").write_text(yaml.safe_dump(campaign, sort_keys=False))
    for name, text in (templates or {"hello.html.j2": SIMPLE_TEMPLATE, "coupon.html.j2": COUPON_TEMPLATE}).items():
        (root / "templates" / name).write_text(text)
    if segments:
        (root / "rules" / "segments.yaml").write_text(yaml.safe_dump({"segments": segments}))
    return load_workspace(root)


def email_campaign(name: str = "promo", audience: dict | None = None, **extra) -> dict:
    return {
        "campaign": name,
        "schedule": "0 9 * * *",
        "audience": audience or {"attribute": "country", "eq": "US"},
        "actions": [{"email": {"template": "hello.html.j2", "subject": "Hello {{ customer.first_name }}"}}],
        **extra,
    }


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now = self.now + delta


def make_runner(workspace: Workspace, store, clock: Clock, environ: dict | None = None, **kwargs) -> Runner:
    outputs = build_outputs(workspace.config, workspace.root, environ or {"NUDGE_SECRET": "test-secret"})
    return Runner(workspace=workspace, store=store, outputs=outputs, clock=clock, **kwargs)


def wait_until(condition, seconds: float) -> bool:
    """Poll `condition` until it holds (True) or `seconds` pass (False): for real processes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def kill_when(process, reached, limit_seconds: float = 300) -> bool:
    """SIGKILL a real process as soon as `reached()` is true; False if it finished first.
    `limit_seconds` only guards against a run that hangs: a loaded machine may take minutes."""
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if reached():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.002)
    process.kill()
    raise AssertionError("the run neither finished nor reached the kill point")


def stop(*pids: int) -> None:
    """SIGSTOP processes and return once each is really stopped: the signal is only queued when
    kill() returns, and a process in the middle of a system call stops when it ends."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    for pid in pids:
        if not wait_until(lambda p=pid: _state(p) in ("T", "Z", None), 60):
            raise AssertionError(f"process {pid} did not stop")


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None


def store_at_rest(store) -> None:
    """Wait until no statement of a stopped process is still running in a PostgreSQL server: a
    COMMIT sent just before the stop lands after it, and the test would have read the rows
    before. Then what the ledger says stays true until the processes go on. (SQLite runs in the
    process itself: stopped, it changes nothing.)"""
    if store.is_sqlite:
        return
    # A statement waiting on a lock another stopped process holds (both workers renew the same
    # occurrence row), or on a stopped client to read its answer, cannot land until they go on.
    busy = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND state = 'active'"
        " AND wait_event_type IS DISTINCT FROM 'Lock' AND wait_event_type IS DISTINCT FROM 'Client'"
    )

    def quiet() -> bool:
        with store.engine.connect() as conn:
            return conn.execute(sa.text(busy)).scalar_one() == 0

    if not wait_until(quiet, 60):
        raise AssertionError("a statement kept running in the server with its process stopped")


def writer_open(store) -> bool:
    """Does another connection hold a write transaction open? A stopped process holding one would
    make every other writer of the store wait on it (SQLite's one write lock; PostgreSQL's row
    locks)."""
    if store.is_sqlite:
        raw = sqlite3.connect(store.engine.url.database, timeout=0, isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("ROLLBACK")
        except sqlite3.OperationalError:  # database is locked
            return True
        finally:
            raw.close()
        return False
    writing = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
    )
    with store.engine.connect() as conn:
        return conn.execute(sa.text(writing)).scalar_one() > 0


def nudge_process(
    workspace: Path, *args: str, stderr: Any = subprocess.PIPE, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """A real `nudge` process on a workspace (this source tree's copy), for crash and concurrency
    tests; `env`: variables set beside the test's own (a connector's secrets)."""
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "--workspace", str(workspace), *args],
        cwd=Path(__file__).resolve().parent.parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, "NUDGE_SECRET": os.environ.get("NUDGE_SECRET", "s"), **(env or {})},
    )


def smtp_config(store_url: str, port: int, **delivery: Any) -> dict:
    """config.yaml for a workspace sending through a test SMTP server on 127.0.0.1."""
    return {
        "store": store_url,
        "timezone": "UTC",
        "email": {
            "connector": "smtp",
            "unsubscribe_url": "https://shop.example/unsubscribe",
            "smtp": {"host": "127.0.0.1", "port": port, "timeout": 10},
        },
        **({"delivery": delivery} if delivery else {}),
    }
