"""Events and customers over HTTP in the Segment Tracking API shape, against a real `nudge serve`
process on 127.0.0.1, on both databases: the official payload shapes, the write key, messageId
deduplication, a batch stored whole or not at all, and a reason for every 400."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

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
        request = urllib.request.Request(self.base + path, data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        if key is not None:  # Segment's libraries: the write key as user name, no password
            request.add_header("Authorization", "Basic " + base64.b64encode(f"{key}:".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture
def served(store, tmp_path) -> Iterator[Served]:
    ws = write_workspace(
        tmp_path / "ws", [], config={"store": store.url, "ingest": {"write_key_env": "SHOP_WRITE_KEY"}}
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "--workspace", str(ws.root), "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NUDGE_SECRET": "s", "SHOP_WRITE_KEY": KEY},
    )
    server = Served(port)
    deadline = time.monotonic() + 30
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
    assert served.post("/v1/identify", IDENTIFY) == (200, {"success": True, "customers": 1, "events": 0})
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


def test_the_write_key_is_required(served, store):
    assert served.post("/v1/track", TRACK, key=None)[0] == 401
    assert served.post("/v1/track", TRACK, key="wrong")[0] == 401
    assert stored(store) == ([], [])


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/v1/track", {**TRACK, "userId": None, "anonymousId": "anon-1"}, "userId: required"),
        ("/v1/track", {**TRACK, "userId": "nobody"}, "unknown customer 'nobody'"),
        ("/v1/track", {**TRACK, "event": ""}, "event: required"),
        ("/v1/track", {**TRACK, "timestamp": "yesterday"}, "occurred_at"),
        ("/v1/identify", {**IDENTIFY, "traits": {"birthday": "1990-02-30"}}, "birthday"),
        ("/v1/batch", {"batch": []}, "batch: expected a non-empty array"),
        ("/v1/batch", {"batch": [{**TRACK, "type": "page"}]}, "batch[0]: type: 'page' is not stored"),
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
    assert (status, answer) == (200, {"success": True, "customers": 1, "events": 1})
    people, history = stored(store)
    assert [p.id for p in people] == ["u-2002"] and [e.type for e in history] == ["purchase"]


def test_segment_shapes_that_must_not_fail_a_batch(served, store):
    again = {
        **IDENTIFY,
        "traits": {"lastName": "Hopper", "address": {"country": "USA"}, "birthday": "1906-12-09T00:00:00.000Z"},
    }
    status, answer = served.post("/v1/batch", {"batch": [IDENTIFY, again, TRACK]})
    assert (status, answer) == (200, {"success": True, "customers": 1, "events": 1}), answer
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
    assert served.post("/v1/batch", None, raw=b" " * (600 * 1024))[0] == 413


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
