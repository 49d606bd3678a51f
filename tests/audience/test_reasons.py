"""`nudge explain` says why a customer was excluded, not just which exclusion applied."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from engine.audience.planner import Planner
from engine.audience.reasons import reason
from engine.delivery.suppressions import suppress
from engine.store.tables import deliveries
from tests.support.helpers import email_campaign, write_workspace
from tests.support.store import seed

AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def why(store, ws, name: str, customer: str, at: datetime = AT) -> tuple[str, str | None]:
    campaign = ws.campaigns[name].campaign
    with store.engine.connect() as conn:
        planner = Planner(conn=conn, config=ws.config, segments={}, at=at)
        outcome = next(row.outcome for row in planner.classify(campaign, only=customer))
        return str(outcome), reason(conn, campaign, ws.config, customer, outcome, at)


def test_each_kind_of_missing_consent_is_named(store, tmp_path):
    seed(
        store,
        customers=[
            {"id": "quiet", "email": "q@example.com", "email_opt_in": False, "country": "US"},
            {
                "id": "left",
                "email": "l@example.com",
                "email_opt_in": True,
                "country": "US",
                "unsubscribed_at": "2026-05-20T08:30:00Z",
            },
            {"id": "bounced", "email": "b@example.com", "email_opt_in": True, "country": "US"},
            {"id": "nomail", "email_opt_in": True, "country": "US"},
        ],
    )
    with store.engine.begin() as conn:
        suppress(conn, ["b@example.com"], "bounce", "sendgrid", datetime(2026, 5, 30, 7, 0, tzinfo=timezone.utc))
    ws = write_workspace(tmp_path, [email_campaign()])
    assert why(store, ws, "promo", "quiet") == ("no_consent", "has not opted in to email (email_opt_in is false)")
    assert why(store, ws, "promo", "left") == ("no_consent", "unsubscribed on 2026-05-20 08:30:00 UTC")
    assert why(store, ws, "promo", "bounced") == (
        "no_consent",
        "address suppressed: bounce (from sendgrid) on 2026-05-30 07:00:00 UTC",
    )
    assert why(store, ws, "promo", "nomail") == ("no_consent", "no email address on file")


def test_an_anonymous_profile_is_named_as_such(store, tmp_path):
    seed(store, customers=[{"id": "anon:v-1", "email": "v@example.com", "email_opt_in": True, "country": "US"}])
    ws = write_workspace(tmp_path, [email_campaign()])
    assert why(store, ws, "promo", "anon:v-1") == (
        "no_consent",
        "an anonymous profile (anon:): nobody to reach until an alias names the customer",
    )


def _ledger(store, campaign: str, customer: str, occurrence: datetime, status: str = "sent") -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(deliveries).values(
                campaign=campaign,
                customer_id=customer,
                occurrence=occurrence.replace(tzinfo=None),
                status=status,
                counts_toward_cap=True,
                created_at=occurrence.replace(tzinfo=None),
                updated_at=occurrence.replace(tzinfo=None),
            )
        )


def test_cooldown_cap_and_holdout_say_when_and_by_what(store, tmp_path):
    seed(
        store,
        customers=[
            {"id": f"c{i}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"} for i in range(3)
        ],
    )
    ws = write_workspace(
        tmp_path,
        [email_campaign(cooldown="7d"), email_campaign("other"), email_campaign("control", holdout="100%")],
        config={"limits": {"frequency_cap": {"max": 1, "per": "7d"}}, "timezone": "Asia/Shanghai"},
    )
    _ledger(store, "promo", "c0", AT - timedelta(days=2))
    _ledger(store, "other", "c1", AT - timedelta(days=1), status="unknown")
    assert why(store, ws, "promo", "c0") == (
        "cooldown",
        "this campaign's occurrence of 2026-05-30 20:00:00 CST (sent); cooldown 1w, until 2026-06-06 20:00:00 CST",
    )
    assert why(store, ws, "promo", "c1") == (
        "frequency_cap",
        "at most 1 per 1w, already used by other at 2026-05-31 20:00:00 CST (unknown)",
    )
    assert why(store, ws, "control", "c2") == (
        "held_out",
        "in this campaign's 100% control group (a stable hash of campaign and customer)",
    )
    assert why(store, ws, "promo", "c2") == ("targeted", None)
