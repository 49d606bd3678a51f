"""Twilio's webhooks on `nudge serve`: a signed STOP reply unsubscribes and suppresses the number
and says so in the consent log, START undoes it, a forged request changes nothing, and delivery
receipts settle the ledger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from twilio.request_validator import RequestValidator
from werkzeug.test import Client

from engine.rules.channels_config import SmsConfig
from engine.store.tables import consent_log, customers, deliveries, suppressions
from engine.web.serve import App
from engine.web.twilio_api import TwilioHooks

TOKEN = "twilio-auth-token"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
ANN, BOB = "+14155550100", "+14155550101"
SHOP = "https://shop.example"
HOOKS = TwilioHooks(TOKEN)


@pytest.fixture
def shop(store):
    naive = NOW.replace(tzinfo=None)
    people = [("ann", ANN), ("bob", BOB), ("carl", None)]
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(customers),
            [
                {"id": i, "phone": phone, "sms_opt_in": True, "attributes": {}, "updated_at": naive}
                for i, phone in people
            ],
        )
    return store


def client(store, hooks: TwilioHooks | None = HOOKS, at: datetime = NOW) -> Client:
    return Client(App(store, b"secret", None, lambda: at, twilio=hooks))


def post(web: Client, path: str, form: dict[str, str], url: str | None = None, **headers) -> object:
    """POST as Twilio does: the form signed with the auth token over the URL it requested."""
    signed_url = url or f"http://localhost{path}"
    signature = RequestValidator(TOKEN).compute_signature(signed_url, form)
    return web.post(path, data=form, headers={"X-Twilio-Signature": signature, **headers})


def reply(web: Client, number: str, body: str):
    return post(web, "/twilio/inbound", {"From": number, "To": "+15005550006", "Body": body, "MessageSid": "SM1"})


def stopped(store) -> dict[str, datetime | None]:
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.select(customers.c.id, customers.c.sms_unsubscribed_at)).all())


def suppressed(store) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        return sorted(conn.execute(sa.select(suppressions.c.email, suppressions.c.reason)).all())


def consent(store) -> list[tuple]:
    with store.engine.connect() as conn:
        found = conn.execute(
            sa.select(
                consent_log.c.customer_id,
                consent_log.c.change,
                consent_log.c.channel,
                consent_log.c.source,
                consent_log.c.old_value,
                consent_log.c.new_value,
                consent_log.c.address,
            ).order_by(consent_log.c.id)
        )
        return [tuple(r) for r in found]


# --- inbound replies -----------------------------------------------------------------------------


def test_a_signed_stop_unsubscribes_suppresses_and_logs_once(shop):
    web = client(shop)
    answer = reply(web, ANN, "STOP")
    assert answer.status_code == 200 and answer.mimetype == "text/xml"
    assert answer.get_data(as_text=True).endswith("<Response/>")  # no text goes back
    assert stopped(shop) == {"ann": NOW.replace(tzinfo=None), "bob": None, "carl": None}
    assert suppressed(shop) == [(ANN, "sms-stop")]
    assert consent(shop) == [
        ("ann", "unsubscribe", "sms", "sms reply", None, "2026-06-01T12:00:00", ANN),
        ("ann", "suppression", "sms", "sms reply", None, "sms-stop", ANN),
    ]
    later = client(shop, at=NOW + timedelta(hours=1))
    assert reply(later, ANN, "stop").status_code == 200  # a second STOP changes and logs nothing
    assert stopped(shop)["ann"] == NOW.replace(tzinfo=None) and len(consent(shop)) == 2


@pytest.mark.parametrize(
    "body", ["stop", "  Stop \n", "STOPALL", "unsubscribe", "Cancel", "end", "QUIT", "退订", "td", "T", "STOP!"]
)
def test_every_stop_word_in_any_case_unsubscribes(shop, body):
    reply(client(shop), ANN, body)
    assert stopped(shop)["ann"] is not None and suppressed(shop) == [(ANN, "sms-stop")]


@pytest.mark.parametrize("body", ["Please stop texting me ads", "thanks", "TT", "Stopp", "", "HELP"])
def test_other_replies_change_nothing(shop, body):
    assert reply(client(shop), ANN, body).status_code == 200
    assert stopped(shop)["ann"] is None and suppressed(shop) == [] and consent(shop) == []


def test_a_stop_from_a_number_nobody_has_still_suppresses_it(shop):
    reply(client(shop), "+14155550199", "STOP")
    assert suppressed(shop) == [("+14155550199", "sms-stop")]
    assert set(stopped(shop).values()) == {None} and consent(shop) == []


def test_forged_or_unsigned_requests_change_nothing(shop):
    web = client(shop)
    form = {"From": ANN, "Body": "STOP"}
    other_key = RequestValidator("another-token").compute_signature("http://localhost/twilio/inbound", form)
    signed_start = RequestValidator(TOKEN).compute_signature("http://localhost/twilio/inbound", {**form, "Body": "HI"})
    other_url = RequestValidator(TOKEN).compute_signature("http://localhost/twilio/status", form)
    for signature in (other_key, signed_start, other_url, "", "garbage"):
        answer = web.post("/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 403, signature
    assert web.post("/twilio/inbound", data=form).status_code == 403
    assert stopped(shop)["ann"] is None and suppressed(shop) == [] and consent(shop) == []


def test_without_an_auth_token_the_endpoints_do_not_exist(shop):
    web = client(shop, hooks=None)
    assert reply(web, ANN, "STOP").status_code == 404
    assert post(web, "/twilio/status", {"MessageSid": "SM1", "MessageStatus": "delivered"}).status_code == 404
    assert stopped(shop)["ann"] is None


def test_hooks_come_from_the_variable_config_names():
    config = SmsConfig.model_validate(
        {"twilio": {"auth_token_env": "SHOP_TWILIO_TOKEN", "status_callback_url": f"{SHOP}/twilio/status"}}
    )
    assert TwilioHooks.from_config(config, {"TWILIO_AUTH_TOKEN": TOKEN}) is None
    assert TwilioHooks.from_config(config, {"SHOP_TWILIO_TOKEN": TOKEN}) == TwilioHooks(TOKEN, SHOP)


def test_behind_a_proxy_the_public_url_twilio_signed_is_accepted(shop):
    # TLS ends at the proxy, which passes the Host on: Twilio signed the https URL.
    web = client(shop)
    form = {"From": ANN, "Body": "STOP"}
    answer = post(web, "/twilio/inbound", form, url=f"{SHOP}/twilio/inbound", Host="shop.example")
    assert answer.status_code == 200 and stopped(shop)["ann"] is not None
    # A proxy that does not pass the Host on: the origin of the configured status callback.
    proxied = client(shop, hooks=TwilioHooks(TOKEN, SHOP))
    assert (
        post(proxied, "/twilio/inbound", {"From": BOB, "Body": "STOP"}, url=f"{SHOP}/twilio/inbound").status_code == 200
    )
    assert stopped(shop)["bob"] is not None


def test_start_resubscribes_and_lifts_only_the_stop(shop):
    reply(client(shop), ANN, "STOP")
    with shop.engine.begin() as conn:
        conn.execute(sa.insert(suppressions).values(email=BOB, reason="manual", created_at=NOW.replace(tzinfo=None)))
        conn.execute(
            sa.update(customers).where(customers.c.id == "bob").values(sms_unsubscribed_at=NOW.replace(tzinfo=None))
        )
    later = client(shop, at=NOW + timedelta(days=1))
    assert reply(later, ANN, "Start").status_code == 200
    assert reply(later, BOB, "UNSTOP").status_code == 200
    assert stopped(shop) == {"ann": None, "bob": None, "carl": None}
    assert suppressed(shop) == [(BOB, "manual")]  # an operator's block is not the customer's to lift
    assert consent(shop)[2:] == [
        ("ann", "unsubscribe", "sms", "sms reply", "2026-06-01T12:00:00", None, ANN),
        ("ann", "suppression", "sms", "sms reply", "sms-stop", None, ANN),
        ("bob", "unsubscribe", "sms", "sms reply", "2026-06-01T12:00:00", None, BOB),
    ]
    assert reply(later, ANN, "YES").status_code == 200 and len(consent(shop)) == 5  # nothing left to undo


# --- delivery receipts ---------------------------------------------------------------------------


def ledger(store, *rows: tuple[int, str, str, str | None]) -> None:
    naive = NOW.replace(tzinfo=None)
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(deliveries),
            [
                {
                    "id": i,
                    "campaign": f"promo{i}",
                    "customer_id": "ann",
                    "occurrence": naive,
                    "status": status,
                    "channel": channel,
                    "provider_id": sid,
                    "created_at": naive,
                    "updated_at": naive,
                }
                for i, status, channel, sid in rows
            ],
        )


def settled(store) -> dict[int, tuple]:
    with store.engine.connect() as conn:
        found = conn.execute(
            sa.select(deliveries.c.id, deliveries.c.status, deliveries.c.reason, deliveries.c.provider_id)
        )
        return {r.id: (r.status, r.reason, r.provider_id) for r in found}


def receipt(web: Client, sid: str, status: str, delivery: int | None = None, code: str | None = None):
    path = "/twilio/status" + (f"?nudge_delivery={delivery}" if delivery is not None else "")
    form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC1", **({"ErrorCode": code} if code else {})}
    return post(web, path, form)


def test_receipts_settle_unknown_and_undelivered_texts(shop):
    ledger(shop, (1, "unknown", "sms", "SMaaa"), (2, "sent", "sms", "SMbbb"), (3, "unknown", "sms", None))
    web = client(shop)
    assert receipt(web, "SMaaa", "delivered").status_code == 200
    assert receipt(web, "SMbbb", "undelivered", code="30003").status_code == 200
    # No answer came to the send, so no SID was recorded: the callback URL names the row.
    assert receipt(web, "SMccc", "sent", delivery=3).status_code == 200
    assert settled(shop) == {
        1: ("sent", "resolved: Twilio reported it delivered", "SMaaa"),
        2: ("failed", "twilio 30003: undelivered", "SMbbb"),
        3: ("sent", "resolved: Twilio reported it sent", "SMccc"),
    }


def test_receipts_for_texts_we_did_not_send_change_nothing(shop):
    ledger(shop, (1, "unknown", "email", "SMaaa"), (2, "unknown", "sms", "SMbbb"), (3, "sent", "sms", "SMccc"))
    before = settled(shop)
    web = client(shop)
    assert receipt(web, "SMzzz", "delivered").status_code == 200  # a SID we never sent
    assert receipt(web, "SMaaa", "failed", code="30008").status_code == 200  # an email row's id
    assert receipt(web, "SMzzz", "failed", delivery=2, code="30008").status_code == 200  # row 2 has another SID
    assert receipt(web, "SMccc", "delivered").status_code == 200  # already sent: stays as it was
    assert receipt(web, "SMbbb", "queued").status_code == 200  # not an outcome
    assert settled(shop) == before


def test_a_forged_receipt_changes_nothing(shop):
    ledger(shop, (1, "sent", "sms", "SMaaa"))
    form = {"MessageSid": "SMaaa", "MessageStatus": "failed", "ErrorCode": "30008"}
    signature = RequestValidator("another-token").compute_signature("http://localhost/twilio/status", form)
    answer = client(shop).post("/twilio/status", data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 403 and settled(shop)[1][0] == "sent"
