"""Events and customers over HTTP in the Segment Tracking API shape, against a real `nudge serve`
process on 127.0.0.1, on both databases: the official payload shapes, the write key, messageId
deduplication, a batch stored whole or not at all, and a reason for every 400; what real
pipelines send (track before identify, anonymous profiles and alias, page, screen, group)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from engine.store.tables import customers, events
from tests.support.helpers import write_workspace
from tests.support.pgserver import free_port
from tests.support.store import ROOT

KEY = "wk_test_3f9a"


class Served:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def post(self, path: str, body: object, key: str | None = KEY, raw: bytes | None = None) -> tuple[int, dict]:
        data = raw if raw is not None else json.dumps(body).encode()
        status, _, answer = self.call("POST", path, data, key)
        return status, answer

    def declared_too_large(self, path: str, size: int) -> int:
        """The status for a body of `size` bytes, asked as a client sending `Expect: 100-continue`
        does: the headers first, the body only if the server wants it. (Sent at once, a refused
        body races the server's close: the client may see a broken pipe instead of the 413.)"""
        connection = http.client.HTTPConnection(self.base.removeprefix("http://"), timeout=30)
        try:
            connection.putrequest("POST", path)
            for name, value in (("Content-Type", "application/json"), ("Content-Length", str(size))):
                connection.putheader(name, value)
            connection.putheader("Authorization", "Basic " + base64.b64encode(f"{KEY}:".encode()).decode())
            connection.putheader("Expect", "100-continue")
            connection.endheaders()
            return connection.getresponse().status
        finally:
            connection.close()

    def call(self, method: str, path: str, data: bytes | None = None, key: str | None = KEY) -> tuple[int, dict, dict]:
        """(status, headers, the body as JSON): a body that is not JSON fails the test here."""
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if key is not None:  # Segment's libraries: the write key as user name, no password
            request.add_header("Authorization", "Basic " + base64.b64encode(f"{key}:".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


@pytest.fixture
def served(store, tmp_path) -> Iterator[Served]:
    topics = {"promotions": {"label": "Offers"}, "newsletter": {"label": "News"}}
    config = {"store": store.url, "ingest": {"write_key_env": "SHOP_WRITE_KEY"}, "topics": topics}
    ws = write_workspace(tmp_path / "ws", [], config=config)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "--workspace", str(ws.root), "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NUDGE_SECRET": "s", "SHOP_WRITE_KEY": KEY},
    )
    server = Served(port)
    deadline = time.monotonic() + 120  # a bound for a loaded machine: the loop ends when it answers
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(server.base + "/health", timeout=1).read()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield server
    finally:
        process.terminate()
        process.communicate(timeout=30)


def stored(store) -> tuple[list, list]:
    with store.engine.connect() as conn:
        people = conn.execute(sa.select(customers).order_by(customers.c.id)).all()
        history = conn.execute(sa.select(events).order_by(events.c.pk)).all()
    return people, history


IDENTIFY = {
    "type": "identify",
    "userId": "u-1001",
    "messageId": "ajs-identify-1",
    "traits": {
        "email": "Grace@Example.com",
        "firstName": "Grace",
        "address": {"country": "US", "city": "Arlington"},
        "email_opt_in": True,
        "plan": "gold",
    },
    "timestamp": "2026-06-01T09:00:00.000Z",
}
TRACK = {
    "type": "track",
    "userId": "u-1001",
    "messageId": "ajs-track-7",
    "event": "Order Completed",
    "properties": {"order_id": "o-55", "amount": 42.5, "currency": "USD"},
    "timestamp": "2026-06-01T09:05:00.000Z",
}


def test_identify_and_track_store_a_customer_and_an_event_once(served, store):
    assert served.post("/v1/identify", IDENTIFY) == (200, {"success": True, "customers": 1, "events": 0, "merged": 0})
    assert served.post("/v1/track", TRACK)[0] == 200
    assert served.post("/v1/track", TRACK)[0] == 200  # a retried request: stored once
    (person,), (event,) = stored(store)
    assert (person.id, person.email, person.first_name, person.country, person.city) == (
        "u-1001",
        "grace@example.com",
        "Grace",
        "US",
        "Arlington",
    )
    assert person.email_opt_in is True and person.attributes == {"plan": "gold"}
    assert (event.customer_id, event.type, event.properties["amount"]) == ("u-1001", "purchase", 42.5)
    assert event.occurred_at.isoformat() == "2026-06-01T09:05:00"


def test_identify_takes_the_phone_sms_consent_and_topic_choices_of_config(served, store):
    traits = {"phone": "138 0013 8000", "address": {"country": "CN"}, "sms_opt_in": True}
    body = {**IDENTIFY, "traits": {**traits, "subscriptions": {"newsletter": False}}}
    assert served.post("/v1/identify", body)[0] == 200
    (person,), _ = stored(store)
    assert (person.phone, person.sms_opt_in) == ("+8613800138000", True)
    status, answer = served.post("/v1/identify", {**IDENTIFY, "traits": {"subscriptions": {"deals": True}}})
    assert status == 400, answer
    assert "unknown topic 'deals': the topics in config.yaml are newsletter, promotions" in answer["message"]
    status, answer = served.post("/v1/identify", {**IDENTIFY, "traits": {**traits, "phone": "12345"}})
    assert status == 400 and "phone '12345': not a valid number for CN" in answer["message"], answer


def test_the_write_key_is_required(served, store):
    assert served.post("/v1/track", TRACK, key=None)[0] == 401
    assert served.post("/v1/track", TRACK, key="wrong")[0] == 401
    assert stored(store) == ([], [])


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/v1/track", {**TRACK, "userId": None}, "userId or anonymousId: required"),
        ("/v1/track", {**TRACK, "userId": "anon:x"}, "userId: 'anon:' begins the ids of anonymous profiles only"),
        ("/v1/track", {**TRACK, "event": ""}, "event: required"),
        ("/v1/track", {**TRACK, "timestamp": "yesterday"}, "occurred_at"),
        ("/v1/identify", {**IDENTIFY, "traits": {"birthday": "1990-02-30"}}, "birthday"),
        ("/v1/alias", {"userId": "u-1001"}, "previousId: required"),
        ("/v1/page", {**TRACK, "properties": [1]}, "properties: expected an object"),
        ("/v1/batch", {"batch": []}, "batch: expected a non-empty array"),
        ("/v1/batch", {"batch": [{**TRACK, "type": "pageview"}]}, "batch[0]: type: 'pageview' is not one of identify"),
    ],
)
def test_a_bad_payload_gets_400_with_the_reason(served, store, path, body, reason):
    status, answer = served.post(path, body)
    assert status == 400 and answer["success"] is False and reason in answer["message"], answer


def test_a_batch_is_stored_whole_or_not_at_all(served, store):
    fresh = {**IDENTIFY, "userId": "u-2002", "traits": {"email": "ada@example.com"}}
    bought = {**TRACK, "userId": "u-2002", "messageId": "m-1"}
    broken = {**TRACK, "userId": "u-2002", "messageId": "m-2", "timestamp": "not a time"}
    status, answer = served.post("/v1/batch", {"batch": [fresh, bought, broken]})
    assert status == 400 and answer["message"].startswith("batch[2]: occurred_at")
    assert stored(store) == ([], [])  # not even the customer the batch identified
    status, answer = served.post("/v1/batch", {"batch": [fresh, bought], "sentAt": "2026-06-01T09:06:00Z"})
    assert (status, answer) == (200, {"success": True, "customers": 1, "events": 1, "merged": 0})
    people, history = stored(store)
    assert [p.id for p in people] == ["u-2002"] and [e.type for e in history] == ["purchase"]


def test_segment_shapes_that_must_not_fail_a_batch(served, store):
    again = {
        **IDENTIFY,
        "traits": {"lastName": "Hopper", "address": {"country": "USA"}, "birthday": "1906-12-09T00:00:00.000Z"},
    }
    status, answer = served.post("/v1/batch", {"batch": [IDENTIFY, again, TRACK]})
    assert (status, answer) == (200, {"success": True, "customers": 1, "events": 1, "merged": 0}), answer
    (person,), _ = stored(store)
    assert (person.first_name, person.last_name, person.birthday, person.country) == (
        "Grace",
        "Hopper",
        "1906-12-09",
        "US",  # from the first identify; the second named the country ("USA"): kept as an attribute
    )
    assert person.attributes["country_name"] == "USA"


def test_bodies_are_bounded_and_must_be_json(served, store):
    assert served.post("/v1/track", None, raw=b"{" * 10)[0] == 400
    status, answer = served.post("/v1/identify", IDENTIFY)
    status, answer = served.post(
        "/v1/track", None, raw=b'{"userId": "u-1001", "event": "x", "properties": {"amount": NaN}}'
    )
    assert status == 400 and "NaN is not a JSON number" in answer["message"]
    assert stored(store)[1] == []
    assert served.declared_too_large("/v1/batch", 600 * 1024) == 413


def test_values_the_stores_cannot_keep_get_400_not_503_and_nothing_is_stored(served, store):
    assert served.post("/v1/identify", IDENTIFY)[0] == 200
    before = stored(store)
    head = b'{"userId": "u-1001", "event": "Order Completed", "timestamp": "2026-06-01T09:05:00Z", '
    bodies = {
        head + b'"properties": {"amount": 1e400}}': "properties.amount: inf is not a finite number",
        head + b'"properties": {"amount": ' + b"9" * 401 + b"}}": "an integer of 401 digits is beyond ±1e15 "
        "(send a larger integer as a string)",
        head + b'"properties": {"name": "\\ud800"}}': "properties.name: contains a lone surrogate",
        head + b'"properties": {"a\\u0000b": 1}}': "properties: key 'a\\x00b': contains a NUL character",
    }
    for body, reason in bodies.items():
        status, answer = served.post("/v1/track", None, raw=body)
        assert status == 400 and reason in answer["message"], (body[-40:], answer)
    future = {**TRACK, "messageId": "m-future", "timestamp": "9999-12-31T23:59:59Z"}
    for path, body, reason in [
        ("/v1/track", future, "occurred_at: 9999-12-31T23:59:59 is more than 24 h in the future"),
        ("/v1/batch", {"batch": [TRACK, future]}, "batch[1]: occurred_at: 9999-12-31T23:59:59 is more than 24 h"),
        ("/v1/identify", {**IDENTIFY, "traits": {"createdAt": "9999-12-31T23:59:59Z"}}, "signed_up_at: 9999-12-31"),
        ("/v1/identify", {**IDENTIFY, "traits": {"ltv": 1e300}}, "ltv: 1e+300 is beyond ±1e15"),
    ]:
        status, answer = served.post(path, body)
        assert status == 400 and reason in answer["message"], (path, answer)
    assert stored(store) == before


def answered(customers: int = 0, events: int = 0, merged: int = 0) -> tuple[int, dict]:
    return 200, {"success": True, "customers": customers, "events": events, "merged": merged}


def test_track_before_identify_creates_the_customer_and_stores_the_event(served, store):
    assert served.post("/v1/track", TRACK) == answered(customers=1, events=1)
    (person,), (event,) = stored(store)
    assert (person.id, person.email, person.phone, person.email_opt_in, person.attributes) == (
        "u-1001",
        None,
        None,
        False,
        {},
    )
    assert (event.customer_id, event.type, event.properties["order_id"]) == ("u-1001", "purchase", "o-55")


def test_a_batch_mixing_known_and_unknown_user_ids_is_accepted_whole(served, store):
    assert served.post("/v1/identify", IDENTIFY)[0] == 200
    strangers = [{**TRACK, "userId": f"u-{n}", "messageId": f"m-{n}"} for n in (7, 8)]
    batch = [{**TRACK, "messageId": "m-known"}, *strangers, {**TRACK, "userId": "u-7", "messageId": "m-7b"}]
    assert served.post("/v1/batch", {"batch": batch}) == answered(customers=2, events=4)
    people, history = stored(store)
    assert [p.id for p in people] == ["u-1001", "u-7", "u-8"]
    assert [e.customer_id for e in history] == ["u-1001", "u-7", "u-8", "u-7"]
    assert (people[0].email, people[0].email_opt_in) == ("grace@example.com", True)  # the known one untouched


def test_identify_after_track_fills_the_created_customer_and_keeps_the_event(served, store):
    assert served.post("/v1/track", TRACK)[0] == 200
    assert served.post("/v1/identify", IDENTIFY) == answered(customers=1)
    (person,), (event,) = stored(store)
    assert (person.email, person.first_name, person.email_opt_in, person.attributes) == (
        "grace@example.com",
        "Grace",
        True,
        {"plan": "gold"},
    )
    assert (event.customer_id, event.type) == ("u-1001", "purchase")
    # A later track of a known customer creates nothing and changes none of their fields.
    assert served.post("/v1/track", {**TRACK, "messageId": "m-later"}) == answered(events=1)
    assert stored(store)[0] == [person]


def test_anonymous_events_become_the_customers_on_alias_and_a_resent_alias_changes_nothing(served, store):
    visitor = {"anonymousId": "v-77", "timestamp": "2026-06-01T08:00:00Z"}
    anonymous = [
        {
            **visitor,
            "type": "identify",
            "traits": {
                "email": "ann@example.com",
                "email_opt_in": True,
                "firstName": "Ann",
                "locale": "fr-FR",
                "plan": "silver",
            },
        },
        {**visitor, "type": "track", "event": "Product Viewed", "messageId": "a-1", "properties": {"sku": "s1"}},
        {**visitor, "type": "page", "name": "Pricing", "messageId": "a-2", "properties": {"path": "/pricing"}},
    ]
    assert served.post("/v1/batch", {"batch": anonymous}) == answered(customers=1, events=2)
    (profile,), history = stored(store)
    # Anonymous: never an address or consent, whatever the traits say; the rest is kept.
    assert (profile.id, profile.email, profile.email_opt_in, profile.first_name) == ("anon:v-77", None, False, "Ann")
    assert [e.customer_id for e in history] == ["anon:v-77", "anon:v-77"]
    assert served.post("/v1/identify", IDENTIFY)[0] == 200
    alias = {"type": "alias", "previousId": "v-77", "userId": "u-1001", "messageId": "al-1"}
    assert served.post("/v1/alias", alias) == answered(merged=1)
    (person,), history = stored(store)  # the profile is gone, its events are the customer's
    assert [(e.customer_id, e.type) for e in history] == [("u-1001", "product_view"), ("u-1001", "page_view")]
    # The profile fills what the customer lacked; nothing the customer had is overwritten.
    assert (person.email, person.email_opt_in, person.first_name, person.locale) == (
        "grace@example.com",
        True,
        "Grace",
        "fr-FR",
    )
    assert person.attributes == {"plan": "gold"}
    before = stored(store)
    assert served.post("/v1/alias", alias) == answered()
    assert served.post("/v1/batch", {"batch": [alias]}) == answered()
    assert stored(store) == before


def test_an_alias_creates_a_customer_not_yet_seen(served, store):
    track = {**TRACK, "userId": None, "anonymousId": "v-9"}
    assert served.post("/v1/track", track) == answered(customers=1, events=1)
    # In one batch: the alias comes first, the anonymous event after it is merged too.
    batch = [{"type": "alias", "previousId": "v-9", "userId": "u-new"}, {**track, "type": "track", "messageId": "m-2"}]
    assert served.post("/v1/batch", {"batch": batch}) == answered(customers=1, events=1, merged=1)
    people, history = stored(store)
    assert [(p.id, p.email, p.email_opt_in) for p in people] == [("u-new", None, False)]
    assert [e.customer_id for e in history] == ["u-new", "u-new"]


def test_page_and_screen_store_page_view_and_screen_view_with_their_properties(served, store):
    page = {
        "userId": "u-1001",
        "messageId": "p-1",
        "name": "Pricing",
        "category": "Docs",
        "properties": {"url": "https://shop.example/pricing", "path": "/pricing", "title": "Pricing"},
        "timestamp": "2026-06-01T09:01:00Z",
    }
    screen = {"anonymousId": "dev-1", "messageId": "s-1", "name": "Cart", "properties": {"items": 2, "name": "Basket"}}
    assert served.post("/v1/page", page) == answered(customers=1, events=1)
    assert served.post("/v1/screen", screen) == answered(customers=1, events=1)
    assert served.post("/v1/batch", {"batch": [{**page, "type": "page"}, {**screen, "type": "screen"}]}) == answered()
    _, history = stored(store)
    assert [(e.customer_id, e.type, e.properties) for e in history] == [
        (
            "u-1001",
            "page_view",
            {
                "url": "https://shop.example/pricing",
                "path": "/pricing",
                "title": "Pricing",
                "name": "Pricing",
                "category": "Docs",
            },
        ),
        ("anon:dev-1", "screen_view", {"items": 2, "name": "Basket"}),  # its own `name` property wins
    ]
    assert history[0].occurred_at.isoformat() == "2026-06-01T09:01:00"


def test_group_is_accepted_and_stores_nothing(served, store):
    group = {"userId": "u-1001", "groupId": "acme", "traits": {"name": "Acme", "employees": 40}}
    assert served.post("/v1/group", group) == answered()
    assert served.post("/v1/batch", {"batch": [{**group, "type": "group"}]}) == answered()
    assert stored(store) == ([], [])


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/v1/pageview", 404), ("GET", "/v1/track", 405), ("PUT", "/v1/batch", 405), ("GET", "/nowhere", 404)],
)
def test_404_and_405_answers_are_json(served, store, method, path, status):
    code, headers, answer = served.call(method, path, b"{}" if method != "GET" else None)
    assert code == status and headers["Content-Type"] == "application/json", (headers, answer)
    assert answer["error"]  # as every error answer of nudge serve
    if path.startswith("/v1/"):  # and the shape of every other answer under /v1
        assert answer["success"] is False and answer["message"] == answer["error"], answer
    if status == 405:
        assert headers["Allow"] == "POST"


def _raw(served: Served, request: bytes) -> bytes:
    host, port = served.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_what_the_http_server_answers_before_nudge_sees_the_request_is_json_too(served, store):
    too_long = [
        (b"POST /v1/track HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /v1/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ]
    for request, status in too_long:
        head, _, body = _raw(served, request).partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status} ".encode()) and b"Content-Type: application/json" in head, head
        assert json.loads(body)["error"]
    # A request line that cannot be read: 400, and JSON that does not repeat it.
    head, _, body = _raw(served, b"GARBAGE\r\n\r\n").partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and json.loads(body) == {"error": "bad request: invalid request line"}


def test_a_timestamp_more_than_24_h_ahead_is_400_with_the_reason(served, store):
    now = datetime.now(timezone.utc)  # the served process reads the wall clock: an hour either side

    def ahead(hours: int) -> str:
        return (now + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")

    for path in ("/v1/track", "/v1/page"):
        status, answer = served.post(path, {**TRACK, "timestamp": ahead(25)})
        assert status == 400 and "is more than 24 h in the future" in answer["message"], answer
    assert stored(store) == ([], [])  # not the event, nor the customer it would have created
    assert served.post("/v1/track", {**TRACK, "timestamp": ahead(23)}) == answered(customers=1, events=1)
    assert served.post("/v1/page", {**TRACK, "messageId": "p-23", "timestamp": ahead(23)}) == answered(events=1)


def test_a_retry_with_the_same_message_id_is_stored_once(served, store):
    # What a collector forwards when the client retries: a new sentAt, the properties serialised in
    # another order, and (Segment and RudderStack correct the client's clock with sentAt: timestamp
    # = receivedAt - (sentAt - originalTimestamp)) a timestamp some milliseconds apart. Only the
    # messageId says it is the same event: without it the importer's content key differs.
    first = {
        **TRACK,
        "messageId": "ajs-retry-1",
        "properties": {"order_id": "o-9", "amount": 10, "currency": "EUR"},
        "timestamp": "2026-06-01T09:05:00.120Z",
        "sentAt": "2026-06-01T09:05:00.150Z",
    }
    retry = {
        **first,
        "properties": {"currency": "EUR", "amount": 10, "order_id": "o-9"},
        "timestamp": "2026-06-01T09:05:00.137Z",
        "sentAt": "2026-06-01T09:05:31.020Z",
    }
    assert served.post("/v1/track", first) == answered(customers=1, events=1)
    assert served.post("/v1/track", retry) == answered()
    assert served.post("/v1/batch", {"batch": [{**retry, "type": "track"}], "sentAt": retry["sentAt"]}) == answered()
    _, (event,) = stored(store)
    assert event.occurred_at.isoformat() == "2026-06-01T09:05:00.120000"  # the first one's
