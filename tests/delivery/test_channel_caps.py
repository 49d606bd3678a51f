"""Frequency caps per channel and in total (`frequency_cap: {email: …, sms: …, all: …}`), as a shop
sees them: what lands in the email and SMS outboxes, and what the ledger says about the rest.
Both databases."""

from __future__ import annotations

import email
import json
from datetime import datetime, timedelta, timezone
from email import policy
from pathlib import Path

import sqlalchemy as sa

from engine.delivery.occurrence import run_occurrence
from engine.store.tables import deliveries
from tests.support.helpers import Clock, make_runner, write_workspace
from tests.support.store import seed

AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
TEMPLATES = {"hello.html.j2": "<p>Hi {{ customer.first_name }}</p>\n"}
# Written sorted by write_workspace: the first, the default topic, must stay `promotions`.
TOPICS = {"promotions": {"label": "Offers"}, "service": {"label": "Your orders", "required": True}}


def people() -> list[dict]:
    """`de` had an email yesterday (the `news` campaign reaches Germany only); `us` had nothing."""
    return [
        {
            "id": key,
            "first_name": key.upper(),
            "email": f"{key}@example.com",
            "email_opt_in": True,
            "phone": phone,
            "sms_opt_in": True,
            "country": key.upper(),
        }
        for key, phone in (("de", "+4915112345678"), ("us", "+12025550143"))
    ]


EMAIL = {"email": {"template": "hello.html.j2", "subject": "Hi {{ customer.first_name }}"}}
NEWS = {"email": {"template": "hello.html.j2", "subject": "News"}}
SMS = {"sms": {"text": "Hi {{ customer.first_name }}, 10% off this week"}}


def campaign(name: str, actions: list[dict], countries: list[str], **extra) -> dict:
    return {
        "campaign": name,
        "schedule": "0 12 * * *",
        "audience": {"attribute": "country", "in": countries},
        "actions": actions,
        **extra,
    }


def run(store, root: Path, caps: dict, promo: list[dict], news: tuple = (NEWS,), **promo_extra) -> None:
    """`news` emails Germany yesterday; then `promo` (the campaign under test) runs for everyone."""
    config = {"limits": {"frequency_cap": caps}, "topics": TOPICS, "sms": {"from": "+8610000000"}}
    campaigns = [campaign("news", list(news), ["DE"]), campaign("promo", promo, ["DE", "US"], **promo_extra)]
    ws = write_workspace(root, campaigns, config=config, templates=TEMPLATES)
    yesterday = AT - timedelta(days=1)
    assert run_occurrence(make_runner(ws, store, Clock(yesterday)), ws.campaigns["news"].campaign, yesterday).counts
    run_occurrence(make_runner(ws, store, Clock(AT)), ws.campaigns["promo"].campaign, AT)


def texts(root: Path) -> list[str]:
    """Who the SMS outbox holds a text for."""
    return sorted(json.loads(p.read_text())["to"] for p in (root / "sms-outbox").glob("*.json"))


def emails(root: Path, subject: str) -> list[str]:
    """Who the email outbox holds an email with this subject for."""
    found = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in (root / "outbox").glob("*.eml")]
    return sorted(str(m["To"]) for m in found if m["Subject"] == subject)


def promo_rows(store) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(customer, channel) → (status, reason) of the promo's ledger rows."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.customer_id, deliveries.c.channel, deliveries.c.status, deliveries.c.reason).where(
                deliveries.c.campaign == "promo"
            )
        ).all()
    return {(r.customer_id, r.channel): (r.status, r.reason) for r in rows}


def test_an_email_capped_customer_still_gets_the_text_of_a_two_channel_campaign(store, tmp_path):
    seed(store, customers=people())
    caps = {"email": {"max": 1, "per": "7d"}, "sms": {"max": 1, "per": "7d"}}
    run(store, tmp_path, caps, [EMAIL, SMS])
    assert texts(tmp_path) == ["+12025550143", "+4915112345678"]  # both texted
    assert emails(tmp_path, "Hi US") == ["us@example.com"]  # only the one not emailed yesterday
    assert emails(tmp_path, "Hi DE") == []  # yesterday's news used the email cap
    assert promo_rows(store) == {
        ("de", "email"): ("skipped", "frequency cap (email)"),
        ("de", "sms"): ("sent", None),
        ("us", "email"): ("sent", None),
        ("us", "sms"): ("sent", None),
    }


def test_the_all_cap_stops_the_second_channel(store, tmp_path):
    seed(store, customers=people())
    run(store, tmp_path, {"all": {"max": 2, "per": "7d"}}, [EMAIL, SMS])
    # `us` had nothing: room for both. `de` had yesterday's email: room for one more, the first
    # channel of the campaign; its text is recorded skipped.
    assert texts(tmp_path) == ["+12025550143"]
    assert emails(tmp_path, "Hi US") == ["us@example.com"]
    assert emails(tmp_path, "Hi DE") == ["de@example.com"]
    assert promo_rows(store) == {
        ("de", "email"): ("sent", None),
        ("de", "sms"): ("skipped", "frequency cap (all channels)"),  # no SMS cap: the total stopped it
        ("us", "email"): ("sent", None),
        ("us", "sms"): ("sent", None),
    }


def test_the_old_shape_caps_email_only(store, tmp_path):
    seed(store, customers=people())
    news_text = {"sms": {"text": "News"}}
    run(store, tmp_path, {"max": 1, "per": "7d"}, [EMAIL, SMS], news=(NEWS, news_text))
    # `de` had an email and a text yesterday: the email cap holds, texts are not capped by it.
    assert texts(tmp_path) == ["+12025550143", "+4915112345678", "+4915112345678"]
    assert emails(tmp_path, "Hi US") == ["us@example.com"]
    assert promo_rows(store)["de", "email"] == ("skipped", "frequency cap (email)")
    assert promo_rows(store)["de", "sms"] == ("sent", None)


def test_a_required_topic_campaign_is_never_capped_nor_counted(store, tmp_path):
    seed(store, customers=people())
    caps = {"email": {"max": 1, "per": "7d"}, "all": {"max": 1, "per": "7d"}}
    run(store, tmp_path, caps, [EMAIL, SMS], topic="service")
    # Order and account service: sent on both channels whatever yesterday's email used of the caps.
    assert texts(tmp_path) == ["+12025550143", "+4915112345678"]
    assert emails(tmp_path, "Hi DE") == ["de@example.com"]
    assert {status for status, _ in promo_rows(store).values()} == {"sent"}
    # …and it used none of them: a marketing text tomorrow still reaches `us`, who got two service
    # messages today (and `de`, under the `all` cap, is held by yesterday's news email alone).
    ws = write_workspace(
        tmp_path,
        [campaign("later", [SMS], ["DE", "US"])],
        config={"limits": {"frequency_cap": caps}, "topics": TOPICS},
        templates=TEMPLATES,
    )
    tomorrow = AT + timedelta(days=1)
    report = run_occurrence(make_runner(ws, store, Clock(tomorrow)), ws.campaigns["later"].campaign, tomorrow)
    assert report.counts == {"sent": 1}
    with store.engine.connect() as conn:
        reached = conn.execute(
            sa.select(deliveries.c.customer_id).where(deliveries.c.campaign == "later", deliveries.c.status == "sent")
        ).scalars()
        assert list(reached) == ["us"]
