"""The HTTP webhook connector against a local receiver: SPEC's reading of every status, stalls and
broken connections retried under the same Idempotency-Key, the hand-off asked before each request,
signatures the receiver can check, and no URL or header in logs or reasons."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import pytest

from connectors.api import ConnectorFatal, OutgoingWebhook, SendResult
from connectors.webhook.http import HttpWebhookConnector
from engine.messages.webhook import signed_headers
from tests.support.pgserver import free_port
from tests.support.webhook_server import Drop, Reply, Stall, WebhookServer, self_signed

SECRET = b"receiver-and-nudge-share-this"
TIMEOUT = 0.5  # seconds: a stall costs this, no more


def call(delivery_id: int, url: str, body: str | None = None) -> OutgoingWebhook:
    body = body or json.dumps({"customer": f"c{delivery_id}", "name": 'Li "Lei" 李雷'}, ensure_ascii=False)
    return OutgoingWebhook(delivery_id, url, body, signed_headers(SECRET, delivery_id, body))


def statuses(results: list[SendResult]) -> dict[int, str]:
    return {r.delivery_id: str(r.status) for r in results}


@pytest.fixture
def connector():
    made = HttpWebhookConnector(timeout=TIMEOUT)
    yield made
    made.close()


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_a_2xx_is_sent_and_the_receiver_can_check_the_signature(connector, status):
    with WebhookServer([Reply(status, b'{"ok": true}' if status != 204 else b"")]) as server:
        message = call(7, server.url())
        [result] = connector.send([message])
    assert (result.delivery_id, result.status, result.reason) == (7, "sent", None)
    [received] = server.requests
    assert received.body == message.body.encode("utf-8")  # the exact bytes, not re-serialised
    expected = hmac.new(SECRET, received.body, hashlib.sha256).hexdigest()
    assert received.headers["x-nudge-signature"] == f"sha256={expected}"
    assert received.headers["idempotency-key"] == "7" and received.headers["x-nudge-delivery"] == "7"
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"] == "nudge"
    assert json.loads(received.body)["name"] == 'Li "Lei" 李雷'


def test_a_body_changed_on_the_way_fails_the_signature_check(connector):
    with WebhookServer() as server:
        connector.send([call(1, server.url())])
    [received] = server.requests
    tampered = received.body.replace(b"c1", b"c2")
    forged = hmac.new(SECRET, tampered, hashlib.sha256).hexdigest()
    assert received.headers["x-nudge-signature"] != f"sha256={forged}"
    wrong_key = hmac.new(b"another secret", received.body, hashlib.sha256).hexdigest()
    assert received.headers["x-nudge-signature"] != f"sha256={wrong_key}"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (Reply(400, b'{"error": "unknown field \\"vip\\""}'), 'HTTP 400: {"error": "unknown field \\"vip\\""}'),
        (Reply(404), "HTTP 404"),
        (Reply(422, b"line one\r\nline two\n"), "HTTP 422: line one line two"),
        (Reply(401, b"x" * 150 + b"y" * 100), "HTTP 401: " + "x" * 150 + "y" * 50),
        # 66 Chinese characters are 198 bytes; the 67th is cut after 2 of its 3 bytes: left out.
        (Reply(403, "拒".encode() * 70), "HTTP 403: " + "拒" * 66),
    ],
)
def test_a_4xx_is_failed_with_the_status_and_the_first_200_bytes_of_the_answer(connector, answer, reason):
    with WebhookServer([answer]) as server:
        [result] = connector.send([call(3, server.url())])
    assert (result.status, result.reason) == ("failed", reason)
    assert len(server.requests) == 1 and server.processed == {}


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_a_5xx_or_429_is_retried_and_the_retry_carries_the_same_key(connector, status):
    with WebhookServer([Reply(status, b"busy")]) as server:
        message = call(11, server.url())
        [first] = connector.send([message])
        [second] = connector.send([message])
    assert (first.status, first.reason) == ("retry", f"HTTP {status}: busy")
    assert second.status == "sent"
    assert [r.key for r in server.requests] == ["11", "11"]
    assert list(server.processed) == ["11"] and server.duplicates == 0


def test_a_stalled_request_is_retried_with_the_same_key_and_processed_once(connector):
    # The receiver acts on the request, then never answers: nudge cannot know, so it retries.
    with WebhookServer([Stall(processed=True)]) as server:
        message = call(21, server.url())
        [first] = connector.send([message])
        [second] = connector.send([message])
    assert first.status == "retry"
    assert first.reason == f"no answer from http://127.0.0.1:{server.port} within {TIMEOUT:g}s"
    assert second.status == "sent"
    assert [r.key for r in server.requests] == ["21", "21"] and server.distinct_keys == 1
    assert len(server.processed) == 1 and server.duplicates == 1  # the repeat was recognised and dropped


@pytest.mark.parametrize("processed", [False, True])
def test_a_connection_dropped_without_an_answer_is_retried(connector, processed):
    with WebhookServer([Drop(processed=processed)]) as server:
        message = call(5, server.url())
        [first] = connector.send([message])
        [second] = connector.send([message])
    assert first.status == "retry"
    assert first.reason.startswith(f"connection to http://127.0.0.1:{server.port} broken before the answer: ")
    assert second.status == "sent" and len(server.processed) == 1


def test_a_refused_connection_is_retried(connector):
    port = free_port()  # nothing listens there
    [result] = connector.send([call(9, f"http://127.0.0.1:{port}/hook")])
    assert (result.status, result.reason) == ("retry", f"http://127.0.0.1:{port} unreachable: Connection refused")


def test_a_redirect_is_not_followed(connector):
    with WebhookServer([Reply(302, headers={"Location": "/elsewhere?key=abc"})]) as server:
        [result] = connector.send([call(4, server.url())])
    assert result.status == "failed"
    assert result.reason == "HTTP 302: redirects are not followed; put the final URL in the action's variable"
    assert [r.path for r in server.requests] == ["/hook"]


def test_the_hand_off_is_asked_before_each_request_and_a_refused_id_is_not_sent(connector):
    asked: list[tuple[list[int], int]] = []  # the ids asked, and how many requests had arrived by then

    with WebhookServer() as server:

        def handoff(ids):
            asked.append((list(ids), len(server.requests)))
            return {i for i in ids if i != 2}

        results = connector.send([call(i, server.url()) for i in (1, 2, 3)], handoff)
    assert statuses(results) == {1: "sent", 2: "not_ours", 3: "sent"}
    assert asked == [([1], 0), ([2], 1), ([3], 1)]
    assert [r.key for r in server.requests] == ["1", "3"]


def test_a_hand_off_that_cannot_be_asked_stops_the_batch_with_what_was_settled(connector):
    def handoff(ids):
        if ids == [2]:
            raise ConnectorFatal("store unreachable at hand-off: OperationalError")
        return set(ids)

    with WebhookServer() as server, pytest.raises(ConnectorFatal) as caught:
        connector.send([call(i, server.url()) for i in (1, 2, 3)], handoff)
    assert str(caught.value) == "store unreachable at hand-off: OperationalError"
    assert statuses(caught.value.partial) == {1: "sent"}
    assert [r.key for r in server.requests] == ["1"]


def test_one_stall_does_not_hold_back_the_rest_of_the_batch(connector):
    with WebhookServer([Stall()]) as server:
        results = connector.send([call(i, server.url()) for i in (1, 2, 3)])
    assert statuses(results) == {1: "retry", 2: "sent", 3: "sent"}


def test_a_host_that_stalls_three_times_in_a_row_waits_for_the_next_attempt(connector):
    with WebhookServer([Stall(), Stall(), Stall()]) as stalled, WebhookServer() as healthy:
        batch = [call(i, stalled.url()) for i in (1, 2, 3, 4, 5)] + [call(6, healthy.url())]
        results = connector.send(batch)
    assert statuses(results) == {1: "retry", 2: "retry", 3: "retry", 4: "retry", 5: "retry", 6: "sent"}
    assert len(stalled.requests) == 3  # 4 and 5 never left: one timeout less each
    assert results[3].reason.startswith(f"not tried in this batch: http://127.0.0.1:{stalled.port} failed")


def test_a_host_that_refuses_connections_or_asks_to_slow_down_is_not_asked_again_in_the_batch(connector):
    asked: list[int] = []

    def handoff(ids):
        asked.extend(ids)
        return set(ids)

    down = f"http://127.0.0.1:{free_port()}/hook"
    with WebhookServer([Reply(429)]) as limited, WebhookServer() as healthy:
        batch = [call(1, down), call(2, limited.url()), call(3, down), call(4, limited.url()), call(5, healthy.url())]
        results = connector.send(batch, handoff)
    assert statuses(results) == {1: "retry", 2: "retry", 3: "retry", 4: "retry", 5: "sent"}
    assert asked == [1, 2, 5]  # 3 and 4 were never handed over: they cannot end `unknown`
    assert len(limited.requests) == 1


def test_requests_share_a_kept_alive_connection(connector):
    with WebhookServer([Reply(200, b"x" * 2000)] * 5) as server:
        results = connector.send([call(i, server.url()) for i in range(1, 6)])
    assert set(statuses(results).values()) == {"sent"}
    assert server.connections == 1


def test_tls_certificates_are_verified(tmp_path):
    cert, key = self_signed(tmp_path)
    with WebhookServer(tls=(cert, key)) as server:
        checking = HttpWebhookConnector(timeout=TIMEOUT)
        [refused] = checking.send([call(1, server.url())])
        trusting = HttpWebhookConnector(timeout=TIMEOUT, verify=str(cert))  # the receiver's CA, named
        [accepted] = trusting.send([call(1, server.url())])
    checking.close()
    trusting.close()
    assert refused.status == "retry"
    assert refused.reason == f"https://127.0.0.1:{server.port} unreachable: TLS: self-signed certificate"
    assert accepted.status == "sent" and len(server.processed) == 1


def test_the_url_path_query_and_headers_never_reach_logs_or_reasons(connector, caplog):
    caplog.set_level(logging.DEBUG)  # an operator debugging with everything on
    secret_path = "/services/T0SECRETPATH?key=SECRETQUERY"
    down = f"http://user:SECRETPASSWORD@127.0.0.1:{free_port()}{secret_path}"
    with WebhookServer([Reply(500), Stall(), Reply(400, b"bad"), Drop()]) as server:
        batch = [call(i, server.url(secret_path)) for i in (1, 2, 3, 4, 5)] + [call(6, down)]
        results = connector.send(batch)
    assert statuses(results) == {1: "retry", 2: "retry", 3: "failed", 4: "retry", 5: "sent", 6: "retry"}
    shown = caplog.text + " ".join(str(r.reason) for r in results)
    for secret in ("SECRETPATH", "SECRETQUERY", "SECRETPASSWORD", "sha256=", batch[0].headers["X-Nudge-Signature"]):
        assert secret not in shown
    assert f"127.0.0.1:{server.port}" in caplog.text  # the host is said, so the log stays useful
