"""Identical content in one SendGrid request: a newsletter through the standard layout (each
recipient's own unsubscribe and preferences links) goes as personalizations of one request and
every recipient still gets their own links, headers and ledger row; personal content goes alone;
a batch's answer applies to each of its recipients."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.email.sendgrid import SendgridConnector
from engine.delivery.occurrence import run_occurrence
from engine.store.tables import deliveries
from tests.connectors.test_sendgrid import AT, KEY, message
from tests.support.helpers import Clock, email_campaign, make_runner, write_workspace
from tests.support.sendgrid_server import SendgridServer
from tests.support.store import seed

LAYOUT = (Path(__file__).resolve().parents[2] / "templates" / "_layout.html.j2").read_text()
TEMPLATES = {
    "_layout.html.j2": LAYOUT,
    "news.html.j2": '{% extends "_layout.html.j2" %}{% block content %}<h1>This week</h1><p>New in the shop.</p>'
    "{% endblock %}",
    "personal.html.j2": '{% extends "_layout.html.j2" %}{% block content %}<h1>Hi {{ customer.first_name }}</h1>'
    "{% endblock %}",
}
PEOPLE = 30


@pytest.fixture
def server():
    with SendgridServer(api_key=KEY) as running:
        yield running


def _deliver(store, tmp_path, server, template: str) -> list:
    seed(
        store,
        customers=[
            {"id": f"c{i}", "first_name": f"P{i}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"}
            for i in range(PEOPLE)
        ],
    )
    campaign = email_campaign()
    campaign["actions"] = [{"email": {"template": template, "subject": "News from the shop"}}]
    config = {
        "email": {
            "connector": "sendgrid",
            "unsubscribe_url": "https://shop.example/unsubscribe",
            "sendgrid": {"host": server.host},
        }
    }
    ws = write_workspace(tmp_path, [campaign], config=config, templates=TEMPLATES)
    runner = make_runner(ws, store, Clock(AT), environ={"SENDGRID_API_KEY": KEY, "NUDGE_SECRET": "s" * 16})
    run_occurrence(runner, ws.campaigns["promo"].campaign, AT)
    runner.outputs.close()
    with store.engine.connect() as conn:
        return conn.execute(
            sa.select(deliveries.c.id, deliveries.c.customer_id, deliveries.c.status, deliveries.c.provider_id)
        ).all()


def test_a_newsletter_goes_in_one_request_and_each_recipient_keeps_their_own_links(store, tmp_path, server):
    rows = _deliver(store, tmp_path, server, "news.html.j2")
    assert len(server.requests) == 1 and len(server.requests[0]["personalizations"]) == PEOPLE
    assert len(server.accepted) == PEOPLE and {a["to"] for a in server.accepted} == {
        f"c{i}@example.com" for i in range(PEOPLE)
    }
    row_of = {f"{r.customer_id}@example.com": r for r in rows}
    tokens = set()
    for received in server.accepted:
        # The one-click link in the header is the recipient's own, and so are both links in the body.
        link = received["headers"]["List-Unsubscribe"][1:-1]
        token = link.rpartition("/")[2]
        html, text = received["content"]["text/html"], received["content"]["text/plain"]
        assert f'href="{link}"' in html and f"/preferences/{token}" in html and link in text
        assert "%nudge_" not in html + text
        assert received["custom_args"] == {"nudge_delivery": str(row_of[received["to"]].id)}
        tokens.add(token)
    assert len(tokens) == PEOPLE
    # The request's answer is each recipient's: every row sent, under the request's message id.
    assert {r.status for r in rows} == {"sent"} and len({r.provider_id for r in rows}) == 1


def test_personal_content_still_goes_one_request_per_recipient(store, tmp_path, server):
    rows = _deliver(store, tmp_path, server, "personal.html.j2")
    assert len(server.requests) == PEOPLE and {r.status for r in rows} == {"sent"}
    greeting = {a["to"]: a["content"]["text/html"] for a in server.accepted}
    assert "Hi P7</h1>" in greeting["c7@example.com"]


def _shared(count: int) -> list:
    """Messages that differ only in their links (the body's and List-Unsubscribe)."""
    return [message(i, personal=False) for i in range(1, count + 1)]


def test_a_batch_answer_applies_to_every_recipient_in_it(server):
    waits: list[float] = []
    sender = SendgridConnector(KEY, host=server.host, timeout=1.0, sleep=waits.append, clock=lambda: 1000.0)
    server.script = [lambda body: (429, {"X-RateLimit-Reset": "1002"}, b'{"errors":[{"message":"too many"}]}')]
    limited = sender.send(_shared(20))
    assert {r.status for r in limited} == {"sent"} and len({r.provider_id for r in limited}) == 1
    assert waits == [pytest.approx(2.01)] and [len(r["personalizations"]) for r in server.requests] == [20, 20]
    server.script = [lambda body: (502, {}, b"{}")] * 5
    down = sender.send([message(i, personal=False) for i in range(101, 121)])
    assert len(down) == 20 and {r.status for r in down} == {"retry"}  # all given back, none lost
    server.script = [lambda body: "drop"]
    lost = sender.send([message(i, personal=False) for i in range(201, 221)])
    assert len(lost) == 20 and {r.status for r in lost} == {"unknown"}  # never resent blindly
    sender.close()


def test_content_that_already_holds_a_tag_is_never_substituted(server):
    sender = SendgridConnector(KEY, host=server.host, timeout=1.0)
    literal = "\nliteral %nudge_unsubscribe_url% here\n"
    batch = [type(m)(**{**m.__dict__, "text": m.text + literal}) for m in _shared(3)]
    results = sender.send(batch)
    sender.close()
    assert {r.status for r in results} == {"sent"}
    assert [len(r["personalizations"]) for r in server.requests] == [1, 1, 1]  # alone, as rendered
    assert all("literal %nudge_unsubscribe_url% here" in a["content"]["text/plain"] for a in server.accepted)
