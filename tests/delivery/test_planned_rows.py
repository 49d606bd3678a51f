"""engine/delivery/planned_rows.py: quiet hours hold text messages as they hold emails (SPEC), in
the customer's own time zone, and the text goes out once their morning comes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from engine.delivery.occurrence import run_occurrence
from engine.delivery.runs import run_campaigns
from engine.store.tables import deliveries
from tests.support.helpers import Clock, make_runner, write_workspace
from tests.support.store import seed

AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)  # 21:00 in Tokyo (quiet), 13:00 in London
TEXT = {
    "campaign": "promo-text",
    "schedule": "0 9 * * *",
    "audience": {"attribute": "country", "eq": "GB"},
    "actions": [{"sms": {"text": "Hi {{ customer.first_name }}"}}],
}


def texts(root) -> list[str]:
    return sorted(json.loads(p.read_text())["to"] for p in (root / "sms-outbox").glob("*.json"))


def test_quiet_hours_hold_a_text_until_the_customers_morning(store, tmp_path):
    people = [("tokyo", "+447911123456", "Asia/Tokyo"), ("london", "+447911123457", "Europe/London")]
    seed(
        store,
        customers=[
            {"id": i, "phone": p, "sms_opt_in": True, "country": "GB", "timezone": z, "first_name": i}
            for i, p, z in people
        ],
    )
    ws = write_workspace(tmp_path, [TEXT], config={"limits": {"quiet_hours": {"start": "21:00", "end": "09:00"}}})
    clock = Clock(AT)
    report = run_occurrence(make_runner(ws, store, clock), ws.campaigns["promo-text"].campaign, AT)
    assert report.counts == {"sent": 1} and report.waiting == 1
    assert texts(tmp_path) == ["+447911123457"]  # London now; Tokyo's waits
    with store.engine.connect() as conn:
        waiting = conn.execute(
            sa.select(deliveries.c.customer_id, deliveries.c.not_before, deliveries.c.channel).where(
                deliveries.c.status == "pending"
            )
        ).all()
    assert [tuple(w) for w in waiting] == [("tokyo", datetime(2026, 6, 2, 0, 0), "sms")]  # 09:00 in Tokyo
    clock.advance(timedelta(hours=12, minutes=1))
    run_campaigns(make_runner(ws, store, clock), [ws.campaigns["promo-text"].campaign], AT)
    assert texts(tmp_path) == ["+447911123456", "+447911123457"]  # each once
