"""Connectors against real peers: a loopback SMTP server, the outbox folder, the registry, task sinks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from connectors.api import OutgoingEmail, SinkError
from connectors.email.outbox import OutboxConnector
from connectors.email.smtp import SmtpConnector
from connectors.registry import Group, available, load
from connectors.tasks.sinks import WebhookSink
from engine.core.errors import UnknownConnector
from tests.support.pgserver import free_port
from tests.support.smtpserver import SmtpServer


def message(i: int, to: str | None = None) -> OutgoingEmail:
    return OutgoingEmail(
        delivery_id=i,
        sender="Shop <shop@example.com>",
        to=to or f"c{i}@example.com",
        subject=f"Hello {i}",
        html=f"<p>Hello {i}</p>",
        text=f"Hello {i}\n",
        headers={"List-Unsubscribe": f"<http://127.0.0.1/u/{i}>"},
    )


def test_smtp_sends_a_batch_over_one_connection_and_reports_refusals():
    with SmtpServer(refuse={"bad@example.com"}) as server:
        connector = SmtpConnector("127.0.0.1", server.port, timeout=5)
        results = connector.send([message(1), message(2, "bad@example.com"), message(3)])
        connector.close()
    assert [(r.delivery_id, r.status) for r in results] == [(1, "sent"), (2, "failed"), (3, "sent")]
    assert "550" in results[1].reason
    assert [m["Subject"] for m in server.recorder.messages] == ["Hello 1", "Hello 3"]
    assert server.recorder.connections == 1
    assert server.recorder.messages[0]["List-Unsubscribe"] == "<http://127.0.0.1/u/1>"


def test_outbox_files_are_complete_and_prove_what_left(tmp_path):
    outbox = OutboxConnector(tmp_path / "out")
    assert outbox.was_sent(7) is False
    [result] = outbox.send([message(7)])
    assert result.status == "sent" and outbox.was_sent(7) is True
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_outbox_sends_only_what_the_hand_off_allows(tmp_path):
    outbox = OutboxConnector(tmp_path / "out")
    results = outbox.send([message(1), message(2)], handoff=lambda ids: {1})
    assert [(r.delivery_id, r.status) for r in results] == [(1, "sent"), (2, "not_ours")]
    assert outbox.was_sent(1) and not outbox.was_sent(2)


def test_smtp_asks_the_hand_off_right_before_the_text_and_sends_nothing_it_refuses():
    asked: list[list[int]] = []

    def handoff(ids):
        asked.append(list(ids))
        return {i for i in ids if i != 2}

    with SmtpServer() as server:
        connector = SmtpConnector("127.0.0.1", server.port, timeout=5)
        results = connector.send([message(1), message(2), message(3)], handoff)
        connector.close()
    assert asked == [[1], [2], [3]]  # one message at a time, right before its text
    assert [r.status for r in results] == ["sent", "not_ours", "sent"]
    assert [m["Subject"] for m in server.recorder.messages] == ["Hello 1", "Hello 3"]


def test_registry_knows_the_builtins_and_names_them_on_a_typo():
    assert {"outbox", "smtp"} <= set(available(Group.EMAIL))
    assert {"store", "csv", "webhook"} <= set(available(Group.TASK_SINKS))
    assert load(Group.EMAIL, "outbox") is OutboxConnector
    with pytest.raises(UnknownConnector, match=r"available are .*outbox"):
        load(Group.EMAIL, "carrier-pigeon")


def test_webhook_sink_posts_json_and_reports_failures():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(500 if received[-1]["title"] == "boom" else 201)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sink = WebhookSink(f"http://127.0.0.1:{server.server_port}/tasks", timeout=5)
        sink.handoff({"id": 1, "queue": "care", "title": "Call Ann"})
        with pytest.raises(SinkError, match="500"):
            sink.handoff({"id": 2, "queue": "care", "title": "boom"})
    finally:
        server.shutdown()
    assert [r["title"] for r in received] == ["Call Ann", "boom"]
    with pytest.raises(SinkError, match="unreachable"):
        WebhookSink(f"http://127.0.0.1:{free_port()}/x", timeout=2).handoff({"id": 3})
