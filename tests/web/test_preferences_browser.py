"""The preference page in a real browser (headless Chromium, `make chromium`): the unsubscribe link
of a sent .eml opened as a customer would, a topic unticked with the mouse, Save clicked; then the
next runs leave that customer out of that topic only.

NUDGE_UPDATE_SCREENSHOTS=1 copies the screenshot to docs/preferences.png (the README's picture)."""

from __future__ import annotations

import email
import os
import shutil
import threading
from datetime import datetime, timedelta, timezone
from email import policy

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from engine.delivery.occurrence import run_occurrence
from engine.store.consent import log_for
from engine.store.tables import deliveries
from engine.web.preferences import workspace_topics
from engine.web.serve import App
from tests.support.devtools import Tab
from tests.support.helpers import Clock, email_campaign, make_runner, write_workspace
from tests.support.pgserver import free_port
from tests.support.store import ROOT, seed

AT = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
TOPICS = {
    "promotions": {"label": "Offers and coupons"},
    "newsletter": {"label": "News from the shop"},
    "orders": {"label": "Orders and your account", "required": True},
}


@pytest.fixture
def server(sqlite_store, tmp_path):
    """`nudge serve`'s app on 127.0.0.1, for the workspace whose links point at it."""
    port = free_port()
    ws = write_workspace(
        tmp_path / "ws",
        [
            email_campaign("promo", topic="promotions", cooldown="0d"),
            email_campaign("weekly", topic="newsletter", cooldown="0d"),
        ],
        config={"topics": TOPICS, "email": {"unsubscribe_url": f"http://127.0.0.1:{port}/unsubscribe"}},
    )
    app = App(
        sqlite_store,
        b"test-secret",
        None,
        lambda: AT + timedelta(hours=1),
        preferences=workspace_topics(ws.root, ws.config),
    )
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield ws
    httpd.shutdown()
    thread.join(10)


def sent_to(store, campaign: str) -> list[str]:
    with store.engine.connect() as conn:
        query = sa.select(deliveries.c.customer_id).where(
            deliveries.c.campaign == campaign, deliveries.c.status == "sent"
        )
        return sorted(conn.execute(query).scalars())


def test_untick_a_topic_in_a_browser_and_the_next_run_leaves_it_out(sqlite_store, server, tmp_path):
    seed(
        sqlite_store,
        customers=[
            {"id": "ann", "first_name": "Ann", "email": "ann@example.com", "email_opt_in": True, "country": "US"}
        ],
    )
    runner = make_runner(server, sqlite_store, Clock(AT))
    promo, weekly = server.select(["promo", "weekly"])
    assert run_occurrence(runner, promo, AT).counts == {"sent": 1}
    [eml] = (server.root / "outbox").glob("*.eml")
    link = email.message_from_bytes(eml.read_bytes(), policy=policy.default)["List-Unsubscribe"].strip("<>")

    with Tab(height=560) as tab:
        tab.open(link)  # the link in the email: 303 to the preference page
        assert tab.evaluate("location.pathname").startswith("/preferences/")
        assert tab.evaluate("document.querySelector('input[value=newsletter]').checked") is True
        tab.click("input[value=newsletter]")
        assert tab.evaluate("document.querySelector('input[value=newsletter]').checked") is False
        tab.click("button[value=save]", then_load=True)
        shown = tab.evaluate("document.body.innerText")
        boxes = tab.evaluate(
            "[...document.querySelectorAll('input[type=checkbox]')].map(b => [b.value, b.checked, b.disabled])"
        )
        picture = tab.screenshot(tmp_path / "preferences.png")
    assert "Your choices are saved." in shown and "a***@example.com" in shown and "ann@example.com" not in shown
    assert sorted(boxes) == [["newsletter", False, False], ["orders", True, True], ["promotions", True, False]]
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 10_000
    if os.environ.get("NUDGE_UPDATE_SCREENSHOTS"):
        shutil.copyfile(picture, ROOT / "docs" / "preferences.png")
    with sqlite_store.engine.connect() as conn:
        [entry] = [e for e in log_for(conn, "ann") if e["change"] == "topic"]
    assert (entry["topic"], entry["new_value"], entry["source"]) == ("newsletter", "false", "preference page")

    later = AT + timedelta(days=1)
    run_occurrence(runner, weekly, later)
    run_occurrence(runner, promo, later)
    assert sent_to(sqlite_store, "weekly") == [] and sent_to(sqlite_store, "promo") == ["ann", "ann"]
