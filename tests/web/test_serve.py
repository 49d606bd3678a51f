"""`nudge serve`: RFC 8058 one-click unsubscribe and SendGrid's ECDSA-signed Event Webhook."""

from __future__ import annotations

import base64
import email
import json
import threading
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from email import policy

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server
from werkzeug.test import Client

from engine.delivery.occurrence import run_occurrence
from engine.messages.unsubscribe import sign
from engine.store.tables import customers, deliveries, events, suppressions
from engine.web.serve import App
from tests.support.helpers import Clock, email_campaign, make_runner, write_workspace
from tests.support.pgserver import free_port
from tests.support.store import seed
from tests.support.tokens import GOLDEN_LEGACY, legacy_sign, readable

SECRET = b"test-secret"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def keypair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(public).decode()  # the form SendGrid shows in Mail Settings


def signed(private, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """SendGrid's headers for `body`, signed at `timestamp` (default: the tests' NOW)."""
    timestamp = str(int(NOW.timestamp())) if timestamp is None else timestamp
    signature = private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


@pytest.fixture
def shop(store):
    seed(
        store,
        customers=[
            {"id": "ann", "email": "ann@example.com", "email_opt_in": True, "country": "US"},
            {"id": "bob", "email": "bob@example.com", "email_opt_in": True, "country": "US"},
        ],
    )
    return store


def rows(store, table) -> list:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(table)).all()


def test_get_opens_the_preference_page_and_one_click_post_unsubscribes(shop):
    client = Client(App(shop, SECRET, None, lambda: NOW))
    token = sign(SECRET, "ann", "ann@example.com", "promo", NOW)
    moved = client.get(f"/unsubscribe/{token}")
    assert moved.status_code == 303 and moved.headers["Location"] == f"../preferences/{token}"
    # Relative (a proxy may serve nudge under a path prefix), resolved as a browser does.
    assert urllib.parse.urljoin(f"/unsubscribe/{token}", moved.headers["Location"]) == f"/preferences/{token}"
    page = client.get(f"/preferences/{token}")
    assert page.status_code == 200 and "a***@example.com" in page.get_data(as_text=True)
    assert rows(shop, suppressions) == []  # a GET alone changes nothing
    done = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    again = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200  # idempotent
    [row] = rows(shop, suppressions)
    assert (row.email, row.reason, row.source) == ("ann@example.com", "unsubscribe", "promo")
    with shop.engine.connect() as conn:
        assert conn.execute(sa.select(customers.c.unsubscribed_at).where(customers.c.id == "ann")).scalar()


def test_tampered_expired_and_incomplete_requests_are_refused(shop):
    client = Client(App(shop, SECRET, None, lambda: NOW))
    token = sign(SECRET, "ann", "ann@example.com", "promo", NOW)
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    other_key = sign(b"another-shop-secret", "bob", "bob@example.com", "promo", NOW)
    _body, mac = GOLDEN_LEGACY.split(".")
    spliced = legacy_sign(SECRET, "bob", "bob@example.com", "promo", NOW).split(".")[0] + "." + mac
    for forged in (flipped, token[:-4], token + "A", other_key, spliced, "garbage"):
        for method in ("GET", "POST"):
            answer = client.open(f"/unsubscribe/{forged}", method=method, data={"List-Unsubscribe": "One-Click"})
            assert answer.status_code == 400 and "not valid" in answer.get_data(as_text=True), forged
    expired = sign(SECRET, "ann", "ann@example.com", "promo", NOW - timedelta(days=500))
    expired_legacy = legacy_sign(SECRET, "ann", "ann@example.com", "promo", NOW - timedelta(days=500))
    for old in (expired, expired_legacy):
        answer = client.post(f"/unsubscribe/{old}", data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 410 and "expired" in answer.get_data(as_text=True)
    assert client.post(f"/unsubscribe/{token}").status_code == 400  # not a one-click request
    assert rows(shop, suppressions) == []


def test_a_link_from_before_opaque_tokens_still_unsubscribes(shop):
    """GOLDEN_LEGACY was made by the old code; links like it sit in customers' inboxes for 400 days."""
    client = Client(App(shop, SECRET, None, lambda: NOW + timedelta(days=30)))
    assert client.get(f"/unsubscribe/{GOLDEN_LEGACY}").status_code == 303
    page = client.get(f"/preferences/{GOLDEN_LEGACY}")
    assert page.status_code == 200 and "a***@example.com" in page.get_data(as_text=True)
    done = client.post(f"/unsubscribe/{GOLDEN_LEGACY}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "You are unsubscribed" in done.get_data(as_text=True)
    [row] = rows(shop, suppressions)
    assert (row.email, row.reason, row.source) == ("ann@example.com", "unsubscribe", "promo")
    with shop.engine.connect() as conn:
        unsubscribed = dict(conn.execute(sa.select(customers.c.id, customers.c.unsubscribed_at)).all())
    assert unsubscribed["ann"] is not None and unsubscribed["bob"] is None


def test_event_webhook_verifies_signatures_and_applies_events_once(shop):
    private, public = keypair()
    with shop.engine.begin() as conn:
        conn.execute(
            sa.insert(deliveries).values(
                id=41,
                campaign="promo",
                customer_id="bob",
                occurrence=NOW.replace(tzinfo=None),
                status="sent",
                created_at=NOW.replace(tzinfo=None),
                updated_at=NOW.replace(tzinfo=None),
            )
        )
    client = Client(App(shop, SECRET, public, lambda: NOW))
    batch = json.dumps(
        [
            {"email": "ann@example.com", "event": "bounce", "sg_event_id": "e1", "timestamp": 1780000000},
            {"email": "x@example.com", "event": "spamreport", "sg_event_id": "e2", "timestamp": 1780000000},
            {
                "email": "bob@example.com",
                "event": "open",
                "sg_event_id": "e3",
                "timestamp": 1780000100,
                "nudge_delivery": "41",
            },
            {
                "email": "bob@example.com",
                "event": "click",
                "sg_event_id": "e4",
                "timestamp": 1780000200,
                "nudge_delivery": "41",
                "url": "https://shop.example/boots",
            },
        ]
    ).encode()
    first = client.post("/sendgrid/events", data=batch, headers=signed(private, batch))
    assert first.status_code == 200
    assert first.json == {"suppressed": 2, "recorded": 2, "resolved": 0, "skipped": 0}
    replay = client.post("/sendgrid/events", data=batch, headers=signed(private, batch))
    assert replay.status_code == 200 and replay.json["suppressed"] == 0
    assert sorted((r.email, r.reason) for r in rows(shop, suppressions)) == [
        ("ann@example.com", "bounce"),
        ("x@example.com", "spamreport"),
    ]
    recorded = sorted((e.type, e.customer_id, e.properties.get("url")) for e in rows(shop, events))
    assert recorded == [("email_click", "bob", "https://shop.example/boots"), ("email_open", "bob", None)]


def test_event_webhook_refuses_tampering_wrong_keys_and_missing_headers(shop):
    private, public = keypair()
    other, _ = keypair()
    client = Client(App(shop, SECRET, public, lambda: NOW))
    batch = json.dumps([{"email": "ann@example.com", "event": "bounce", "sg_event_id": "e1"}]).encode()
    tampered = batch.replace(b"ann@", b"bob@")
    assert client.post("/sendgrid/events", data=tampered, headers=signed(private, batch)).status_code == 403
    assert client.post("/sendgrid/events", data=batch, headers=signed(other, batch)).status_code == 403
    assert client.post("/sendgrid/events", data=batch, headers={"Content-Type": "application/json"}).status_code == 401
    assert Client(App(shop, SECRET, None, lambda: NOW)).post("/sendgrid/events", data=batch).status_code == 503
    assert rows(shop, suppressions) == []


def test_the_link_in_a_sent_email_unsubscribes_through_a_real_server(store, tmp_path):
    seed(
        store,
        customers=[
            {
                "id": "customer-1042",
                "first_name": "Ann",
                "email": "ann@example.com",
                "email_opt_in": True,
                "country": "US",
            }
        ],
    )
    port = free_port()
    ws = write_workspace(
        tmp_path,
        [email_campaign(cooldown="0d")],
        config={"email": {"unsubscribe_url": f"http://127.0.0.1:{port}/unsubscribe"}},
    )
    clock = Clock(NOW)
    run_occurrence(
        make_runner(ws, store, clock, environ={"NUDGE_SECRET": SECRET.decode()}), ws.campaigns["promo"].campaign, NOW
    )
    [file] = (tmp_path / "outbox").glob("*.eml")
    link = email.message_from_bytes(file.read_bytes(), policy=policy.default)["List-Unsubscribe"].strip("<>")
    token = link.rsplit("/", 1)[1]
    assert readable(token, "ann@example.com", "customer-1042", "promo") == []
    server = make_server("127.0.0.1", port, App(store, SECRET, None, lambda: NOW), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        request = urllib.request.Request(
            link, data=urllib.parse.urlencode({"List-Unsubscribe": "One-Click"}).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    finally:
        server.shutdown()
    clock.advance(timedelta(days=1))
    later = run_occurrence(
        make_runner(ws, store, clock, environ={"NUDGE_SECRET": SECRET.decode()}),
        ws.campaigns["promo"].campaign,
        NOW + timedelta(days=1),
    )
    assert later.matched == 1 and later.counts == {}  # excluded for consent from now on
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def _delivery(store, delivery_id: int, status: str, customer: str = "bob") -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(deliveries).values(
                id=delivery_id,
                campaign=f"promo-{delivery_id}",
                customer_id=customer,
                occurrence=NOW.replace(tzinfo=None),
                status=status,
                created_at=NOW.replace(tzinfo=None),
                updated_at=NOW.replace(tzinfo=None),
            )
        )


def test_a_validly_signed_batch_signed_long_ago_or_ahead_is_refused_with_a_json_reason(shop):
    """A captured request replayed later keeps a valid signature: its signing time refuses it."""
    private, public = keypair()
    client = Client(App(shop, SECRET, public, lambda: NOW))
    batch = json.dumps([{"email": "ann@example.com", "event": "bounce", "sg_event_id": "e1"}]).encode()
    in_2001 = str(int(datetime(2001, 9, 9, tzinfo=timezone.utc).timestamp()))
    for timestamp, reason in [
        (in_2001, "signature too old"),
        (str(int((NOW - timedelta(minutes=11)).timestamp())), "signature too old"),
        (str(int((NOW + timedelta(minutes=5)).timestamp())), "signature from the future"),
        ("soon", "X-Twilio-Email-Event-Webhook-Timestamp is not a Unix time in seconds"),
        ("9" * 30, "X-Twilio-Email-Event-Webhook-Timestamp is not a Unix time in seconds"),
    ]:
        answer = client.post("/sendgrid/events", data=batch, headers=signed(private, batch, timestamp))
        assert answer.status_code == 403 and answer.mimetype == "application/json", (timestamp, answer.data)
        assert answer.json["error"].startswith(reason), answer.json
    assert rows(shop, suppressions) == []
    for fresh in (NOW - timedelta(minutes=9), NOW + timedelta(seconds=90)):  # inside the window, some skew
        headers = signed(private, batch, str(int(fresh.timestamp())))
        assert client.post("/sendgrid/events", data=batch, headers=headers).status_code == 200
    assert [r.email for r in rows(shop, suppressions)] == ["ann@example.com"]


def test_odd_events_in_a_signed_batch_are_skipped_and_counted_not_a_500(shop):
    private, public = keypair()
    client = Client(App(shop, SECRET, public, lambda: NOW))
    odd = [
        {"email": ["ann@example.com"], "event": "bounce", "timestamp": 1780000000},
        {"email": 42, "event": "bounce", "timestamp": 1780000000},
        {"email": "ann@example.com", "event": ["bounce"], "timestamp": 1780000000},
        {"email": "bob@example.com", "event": "open", "sg_event_id": "e9", "nudge_delivery": "²"},
        {"email": "bob@example.com", "event": "open", "sg_event_id": "e8", "nudge_delivery": "9" * 5000},
        {"email": "bob@example.com", "event": "open", "timestamp": "yesterday"},
        "not an object",
    ]
    good = {"email": "ann@example.com", "event": "bounce", "sg_event_id": "e1", "timestamp": 1780000000}
    batch = json.dumps([*odd, good]).encode()
    answer = client.post("/sendgrid/events", data=batch, headers=signed(private, batch))
    assert answer.status_code == 200
    assert answer.json == {"suppressed": 1, "recorded": 0, "resolved": 0, "skipped": len(odd)}
    assert [(r.email, r.reason) for r in rows(shop, suppressions)] == [("ann@example.com", "bounce")]
    deep = b"[" * 100_000 + b"]" * 100_000
    assert client.post("/sendgrid/events", data=deep, headers=signed(private, deep)).status_code == 400


def test_a_body_over_the_limit_is_refused_before_it_is_read(shop):
    private, public = keypair()
    client = Client(App(shop, SECRET, public, lambda: NOW, max_body=1024))
    body = json.dumps([{"event": "open", "email": "a@example.com", "pad": "x" * 2000}]).encode()
    answer = client.post("/sendgrid/events", data=body, headers=signed(private, body))
    assert answer.status_code == 413


def test_provider_events_resolve_unknown_deliveries(shop):
    private, public = keypair()
    _delivery(shop, 51, "unknown")
    _delivery(shop, 52, "unknown", customer="ann")
    _delivery(shop, 53, "failed", customer="ann")
    client = Client(App(shop, SECRET, public, lambda: NOW))
    batch = json.dumps(
        [
            {"email": "bob@example.com", "event": "processed", "timestamp": 1780000000, "nudge_delivery": "51"},
            {"email": "ann@example.com", "event": "delivered", "timestamp": 1780000000, "nudge_delivery": 53},
        ]
    ).encode()
    answer = client.post("/sendgrid/events", data=batch, headers=signed(private, batch))
    assert answer.json["resolved"] == 1
    statuses = {r.id: (r.status, r.reason) for r in rows(shop, deliveries)}
    assert statuses[51] == ("sent", "resolved: SendGrid reported it processed")
    assert statuses[52][0] == "unknown" and statuses[53][0] == "failed"  # only what was named, only unknowns


def test_the_access_log_never_shows_an_unsubscribe_token(shop, caplog):
    from engine.web.access import AccessLogHandler

    port = free_port()
    server = make_server("127.0.0.1", port, App(shop, SECRET, None, lambda: NOW), request_handler=AccessLogHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token = sign(SECRET, "ann", "ann@example.com", "promo", NOW)
    try:
        with caplog.at_level("INFO"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/unsubscribe/{token}?utm=x", timeout=10).read()
    finally:
        server.shutdown()
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "/unsubscribe/[token]" in logged and token not in logged and "utm" not in logged
    link, page = [r for r in caplog.records if r.name == "nudge.serve.access"]  # the link, then the page it opens
    assert (link.method, link.path, link.status) == ("GET", "/unsubscribe/[token]", 303)
    assert (page.method, page.path, page.status) == ("GET", "/preferences/[token]", 200)


def test_every_error_answer_is_json(shop):
    client = Client(App(shop, SECRET, None, lambda: NOW))
    for method, path, status in (("GET", "/nope", 404), ("DELETE", "/metrics", 405), ("GET", "/v1/track", 405)):
        answer = client.open(path, method=method)
        assert answer.status_code == status and answer.headers["Content-Type"] == "application/json"
        assert answer.json["error"]
