"""Small workspaces for delivery tests, and a clock the tests move by hand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

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


def kill_when(process, reached, limit_seconds: float = 60) -> bool:
    """SIGKILL a real process as soon as `reached()` is true; False if it finished first."""
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
