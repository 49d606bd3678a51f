"""`/healthz` and `/metrics` (parsed with Prometheus' own parser), checked against the ledger."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from engine.delivery.occurrence import run_occurrence
from engine.store import Store
from engine.store.tables import deliveries
from engine.web.serve import App
from tests.support.helpers import Clock, email_campaign, make_runner, write_workspace
from tests.support.store import seed

AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def test_metrics_agree_with_the_ledger_and_health_says_ok(store, tmp_path):
    seed(
        store,
        customers=[
            {"id": f"c{i:02d}", "email": f"c{i}@example.com", "email_opt_in": i % 4 != 0, "country": "US"}
            for i in range(40)
        ],
    )
    ws = write_workspace(tmp_path, [email_campaign(holdout="25%"), email_campaign("other")])
    for campaign in ws.select():
        run_occurrence(make_runner(ws, store, Clock(AT)), campaign, AT)
    client = Client(App(store, b"s", None, lambda: AT))
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json["status"] == "ok"
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.get_data(as_text=True))}
    scraped = {(s.labels["campaign"], s.labels["status"]): s.value for s in families["nudge_deliveries"].samples}
    with store.engine.connect() as conn:
        ledger = {
            (c, s): n
            for c, s, n in conn.execute(
                sa.select(deliveries.c.campaign, deliveries.c.status, sa.func.count()).group_by(
                    deliveries.c.campaign, deliveries.c.status
                )
            )
        }
    assert scraped == ledger and ("promo", "held_out") in scraped
    assert families["nudge_queue_depth"].samples[0].value == 0
    last = {s.labels["campaign"]: s.value for s in families["nudge_last_occurrence_timestamp_seconds"].samples}
    assert last == {"promo": AT.timestamp(), "other": AT.timestamp()}
    latency = {s.name: s.value for s in families["nudge_send_latency_seconds"].samples if s.name.endswith("_count")}
    assert latency["nudge_send_latency_seconds_count"] == sum(n for (_, s), n in ledger.items() if s == "sent")


def test_health_is_503_when_the_schema_is_behind(store):
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    answer = Client(App(store, b"s", None, lambda: AT)).get("/healthz")
    assert answer.status_code == 503 and answer.json["schema"] == "0001"


def test_the_queue_counts_what_is_due_apart_from_what_waits_for_quiet_hours(store, tmp_path):
    zones = ["UTC"] * 3 + ["America/Los_Angeles"] * 2  # 12:00 UTC is 05:00 there: quiet until 09:00
    seed(
        store,
        customers=[
            {"id": f"c{i}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US", "timezone": zone}
            for i, zone in enumerate(zones)
        ],
    )
    ws = write_workspace(
        tmp_path, [email_campaign()], config={"limits": {"quiet_hours": {"start": "21:00", "end": "09:00"}}}
    )
    run_occurrence(make_runner(ws, store, Clock(AT)), ws.select()[0], AT)
    with store.engine.begin() as conn:  # one due message stuck for an hour (a connector down, say)
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.customer_id == "c0")
            .values(status="pending", created_at=AT.replace(tzinfo=None) - timedelta(hours=1))
        )
    answer = Client(App(store, b"s", None, lambda: AT)).get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(answer.get_data(as_text=True))}
    assert families["nudge_queue_depth"].samples[0].value == 1
    assert families["nudge_deferred_deliveries"].samples[0].value == 2
    assert families["nudge_oldest_due_seconds"].samples[0].value == 3600
    # One charset, as Prometheus expects the content type.
    assert (
        answer.headers["Content-Type"] == CONTENT_TYPE_LATEST and answer.headers["Content-Type"].count("charset") == 1
    )


@pytest.mark.parametrize(
    "url", ["sqlite:////nonexistent-folder/nudge.db", "postgresql+psycopg://nudge@127.0.0.1:1/nudge?connect_timeout=2"]
)
def test_with_the_store_down_metrics_and_health_answer_503_in_json(url):
    down = Store(engine=sa.create_engine(url), url=url)
    client = Client(App(down, b"s", None, lambda: AT))
    for path in ("/metrics", "/healthz"):
        answer = client.get(path)
        assert answer.status_code == 503 and answer.headers["Content-Type"] == "application/json", path
        assert "unreachable" in json.dumps(answer.json)
