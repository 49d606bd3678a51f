"""The dashboard for tests: the demo shop with an A/B test and a journey run on three days of its
past, served by `nudge serve`'s app on 127.0.0.1, and a headless Chromium tab that sends the
password and records every request the page makes and everything it says on the console."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from werkzeug.serving import make_server

from engine.cli.main import main
from engine.rules.config import resolve_store_url
from engine.store import open_store
from engine.web.dashboard import Dashboard
from engine.web.serve import App
from engine.workspace.loader import load_workspace
from tests.support.devtools import Tab
from tests.support.pgserver import free_port

AT = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
PASSWORD = "correct horse battery staple"
WRITE_KEY = "write-key-for-events"
VARIANTS = """\
campaign: winback-ab
description: An A/B test of two subject lines for buyers who stopped buying.
schedule: "0 9 * * *"
audience: {all: [{segment: buyer}, {not: {event: purchase, within: 30d}}]}
cooldown: 0d
holdout: 20%
actions:
  - email:
      variants:
        - {name: a, weight: 50, template: winback_ab.html.j2, subject: "A {{ customer.first_name }}"}
        - {name: b, weight: 50, template: winback_ab.html.j2, subject: "B {{ customer.first_name }}"}
"""
RUN_DAYS = (20, 17, 13, 10, 6, 3)


def nudge(root: Path, *args: str) -> str:
    env = {"NUDGE_SECRET": "s", "COLUMNS": "120"}
    result = CliRunner().invoke(main, ["--workspace", str(root), *args], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def shop(root: Path, store_url: str | None = None) -> Path:
    """The demo workspace (500 customers) with an A/B test, run at six instants before AT."""
    config = root / "config.yaml"
    text = config.read_text()
    if store_url is not None:
        text = text.replace("sqlite:///nudge.db", store_url)
    config.write_text(text + "\nui: {password_env: NUDGE_TEST_UI_PASSWORD}\n")
    (root / "rules" / "winback-ab.yaml").write_text(VARIANTS)
    (root / "templates" / "winback_ab.html.j2").write_text("<p>Come back, {{ customer.first_name }}</p>\n")
    nudge(root, "demo", "--customers", "500", "--at", AT.isoformat())
    for days in RUN_DAYS:
        nudge(root, "run", "--at", (AT - timedelta(days=days)).isoformat())
    return root


def report_json(root: Path, *campaigns: str) -> dict[str, Any]:
    return json.loads(nudge(root, "report", *campaigns, "--format", "json"))


def make_app(root: Path, password: str = PASSWORD) -> App:
    workspace = load_workspace(root, need_rules=False)
    store = open_store(resolve_store_url(workspace.config, root), create=False)
    dashboard = Dashboard(store, root, password, lambda: AT)
    return App(store, b"test-secret", None, lambda: AT, write_key=WRITE_KEY, dashboard=dashboard)


@contextlib.contextmanager
def served(root: Path) -> Iterator[str]:
    """The app on a free port of 127.0.0.1; yields its base URL."""
    port = free_port()
    app = make_app(root)
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        httpd.shutdown()
        thread.join(10)
        app.store.dispose()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class WatchedTab(Tab):
    """A tab that sends the dashboard's password and keeps what each page asked for and logged."""

    def __init__(self, width: int = 1280, height: int = 900):
        super().__init__(width, height)
        for domain in ("Network.enable", "Runtime.enable", "Log.enable"):
            self.call(domain)
        self.call("Network.setExtraHTTPHeaders", {"headers": {"Authorization": basic("analyst", PASSWORD)}})
        self.width = width

    def visit(self, url: str) -> tuple[list[str], list[str]]:
        """Open a page; the URLs it requested and its console messages (errors, warnings, logs)."""
        self.open(url)
        self.evaluate("document.readyState")  # lets the events in flight arrive
        requests = [
            e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"
        ]
        said = [
            json.dumps(e["params"])[:300]
            for e in self.events
            if e.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded")
        ]
        return requests, said

    def whole_page(self, target: Path) -> Path:
        """A screenshot of the whole page, not only the window."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        metrics = {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", metrics)
        return self.screenshot(target)
