"""`/healthz` and `/metrics` (parsed with Prometheus' own parser), checked against the ledger."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from engine.delivery.occurrence import run_occurrence
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
