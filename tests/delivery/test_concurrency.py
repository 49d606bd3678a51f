"""Real OS processes planning at the same moment: neighbouring occurrences of one campaign, and
campaigns sharing a frequency cap. Counted at the outbox (the sink), not just in the ledger."""

from __future__ import annotations

import email
import os
import subprocess
import sys
from collections import Counter
from email import policy
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from engine.store.tables import deliveries
from tests.support.store import ROOT, make_store, seed

CUSTOMERS = 3000
AT = "2026-06-01T12:00:00+00:00"


def workspace(root: Path, store_url: str, campaigns: list[str], limits: dict | None = None) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "templates").mkdir()
    config = {"store": store_url, "timezone": "UTC", "email": {"connector": "outbox", "outbox": {"dir": "outbox"}}}
    if limits:
        config["limits"] = limits
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    for name in campaigns:
        rule = {
            "campaign": name,
            "schedule": "* * * * *",
            "audience": {"attribute": "country", "eq": "US"},
            "actions": [{"email": {"template": "hi.html.j2", "subject": "Hi from " + name}}],
        }
        (root / "rules" / f"{name}.yaml").write_text(yaml.safe_dump(rule))
    (root / "templates" / "hi.html.j2").write_text("<p>Hello {{ customer.first_name }}</p>\n")
    return root


def start(ws: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "--workspace", str(ws), "run", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NUDGE_SECRET": "s"},
    )


def finish(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        _, err = process.communicate(timeout=180)
        assert process.returncode == 0, err.decode()


def recipients(ws: Path) -> Counter:
    found: Counter = Counter()
    for file in (ws / "outbox").glob("*.eml"):
        found[email.message_from_bytes(file.read_bytes(), policy=policy.default)["To"]] += 1
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def shop(request, tmp_path):
    opened = make_store(request.param, tmp_path, request)
    seed(
        opened,
        customers=[
            {"id": f"c{i:05d}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"}
            for i in range(CUSTOMERS)
        ],
    )
    yield opened
    opened.dispose()


@pytest.mark.parametrize("processes", [2, 3])
def test_neighbouring_occurrences_in_parallel_respect_the_cooldown(shop, tmp_path, processes):
    if processes == 3 and shop.is_sqlite:
        pytest.skip("three writers on SQLite add nothing a second one does not show")
    ws = workspace(tmp_path / "ws", shop.url, ["blast"])
    ats = [f"2026-06-01T12:{minute:02d}:00+00:00" for minute in range(processes)]
    finish([start(ws, "--at", at) for at in ats])
    sent = recipients(ws)
    assert len(sent) == CUSTOMERS
    assert max(sent.values()) == 1, f"{sum(n - 1 for n in sent.values())} duplicates"
    with shop.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.customer_id, deliveries.c.status)).all()
    # Each customer has exactly one ledger row: the later occurrences saw the first in the cooldown.
    assert Counter(r.customer_id for r in rows).most_common(1)[0][1] == 1
    assert {r.status for r in rows} == {"sent"}


def test_campaigns_planned_in_parallel_share_the_frequency_cap_exactly(shop, tmp_path):
    ws = workspace(tmp_path / "ws", shop.url, ["alpha", "beta"], limits={"frequency_cap": {"max": 1, "per": "7d"}})
    finish([start(ws, "alpha", "--at", AT), start(ws, "beta", "--at", AT)])
    sent = recipients(ws)
    assert len(sent) == CUSTOMERS
    assert max(sent.values()) == 1, f"{sum(n - 1 for n in sent.values())} customers over the cap"
    with shop.engine.connect() as conn:
        by_campaign = dict(
            conn.execute(sa.select(deliveries.c.campaign, sa.func.count()).group_by(deliveries.c.campaign)).all()
        )
    assert sum(by_campaign.values()) == CUSTOMERS  # the second campaign wrote no row for a capped customer
