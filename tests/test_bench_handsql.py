"""The benchmark's hand-written SQL, the reference every planner ratio is measured against, puts
an event at exactly a window's boundary on the same side as nudge does, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bench.handsql import queries
from engine.audience.planner import Planner
from tests.support.helpers import email_campaign, write_workspace
from tests.support.store import seed

AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def test_a_purchase_exactly_180_days_ago_is_a_lapsed_buyer_for_nudge_and_the_hand_sql(store, tmp_path):
    people = [{"id": c, "email": f"{c}@example.com", "email_opt_in": True} for c in ("edge", "recent", "now")]
    seed(
        store,
        customers=people,
        events=[
            {"customer_id": "edge", "type": "purchase", "occurred_at": AT - timedelta(days=180)},
            {"customer_id": "recent", "type": "purchase", "occurred_at": AT - timedelta(days=179)},
            # Bought 200 days ago and again at exactly the planning moment: not lapsed.
            {"customer_id": "now", "type": "purchase", "occurred_at": AT - timedelta(days=200)},
            {"customer_id": "now", "type": "purchase", "occurred_at": AT},
        ],
    )
    lapsed = {"all": [{"event": "purchase"}, {"not": {"event": "purchase", "within": "180d"}}]}
    ws = write_workspace(tmp_path / "ws", [email_campaign("lapsed-buyers", audience=lapsed)])
    with store.engine.connect() as conn:
        sql, params = queries(conn, AT, "UTC")["lapsed-buyers"]
        assert [row[0] for row in conn.execute(sql, params)] == ["edge"]
        plan = Planner(conn=conn, config=ws.config, segments=ws.segments, at=AT).plan(
            ws.campaigns["lapsed-buyers"].campaign
        )
        assert plan.targeted + plan.held_out == ["edge"]
