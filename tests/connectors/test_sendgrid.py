"""The SendGrid connector through the official client against a local v3 mail/send server:
the whole status matrix, batching, keep-alive, and secrets kept out of logs."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from connectors.api import OutgoingEmail
from connectors.email.sendgrid import SendgridConnector
from engine.core.errors import RuntimeFailure
from engine.delivery.occurrence import run_occurrence
from engine.store.tables import deliveries
from tests.support.helpers import Clock, email_campaign, make_runner, write_workspace
from tests.support.sendgrid_server import SendgridServer
from tests.support.store import seed

KEY = "SG.test-key"
AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def message(i: int, to: str | None = None, personal: bool = True) -> OutgoingEmail:
    url = f"http://127.0.0.1:8025/unsubscribe/token{i}"
    greeting = f"Hello {i}" if personal else "Hello"
    return OutgoingEmail(
        delivery_id=i,
        sender="Shop <shop@example.com>",
        to=to or f"c{i}@example.com",
        subject="News",
        html=f'<p>{greeting}</p><a href="{url}">Unsubscribe</a>',
        text=f"{greeting}\nUnsubscribe: {url}\n",
        headers={
            "List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Nudge-Delivery": str(i),
            "Message-ID": f"<nudge.{i}.0123456789abcdef@example.com>",
        },
    )


@pytest.fixture
def server():
    with SendgridServer(api_key=KEY) as running:
        yield running


def connector(server, **kwargs) -> tuple[SendgridConnector, list[float]]:
    waits: list[float] = []
    made = SendgridConnector(KEY, host=server.host, timeout=1.0, sleep=waits.append, **kwargs)
    return made, waits


def statuses(results) -> dict[int, str]:
    return {r.delivery_id: r.status for r in results}


def test_personal_messages_go_one_request_each_over_kept_alive_connections(server):
    sender, _ = connector(server, concurrency=4)
    results = sender.send([message(i) for i in range(1, 41)])
    sender.close()
    assert set(statuses(results).values()) == {"sent"} and all(r.provider_id for r in results)
    assert len(server.requests) == 40 and len(server.accepted) == 40
    assert server.connections <= 4  # reused, not one per request
    first = next(a for a in server.accepted if a["to"] == "c1@example.com")
    assert first["custom_args"] == {"nudge_delivery": "1"}  # an opaque id, nothing personal
    assert first["headers"]["List-Unsubscribe"] == "<http://127.0.0.1:8025/unsubscribe/token1>"
    assert first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "X-Nudge-Delivery" not in first["headers"]


def test_identical_content_is_batched_up_to_1000_without_repeating_an_address(server):
    sender, _ = connector(server)
    batch = [message(i, personal=False) for i in range(1, 2501)] + [message(9001, to="c1@example.com", personal=False)]
    results = sender.send(batch)
    sizes = sorted(len(r["personalizations"]) for r in server.requests)
    assert sizes == [501, 1000, 1000] and set(statuses(results).values()) == {"sent"}
    for request in server.requests:
        addresses = [p["to"][0]["email"] for p in request["personalizations"]]
        assert len(addresses) == len(set(addresses))
    received = {a["to"]: a for a in server.accepted if a["to"] == "c7@example.com"}
    assert "token7" in received["c7@example.com"]["content"]["text/html"]  # per-recipient link substituted
    assert Counter(a["to"] for a in server.accepted)["c1@example.com"] == 2
    # Each recipient keeps the Message-ID the engine gave their message (on the From domain).
    first = server.requests[0]["personalizations"][0]
    assert (
        first["headers"]["Message-ID"]
        == f"<nudge.{first['custom_args']['nudge_delivery']}.0123456789abcdef@example.com>"
    )


def test_a_400_is_split_until_the_bad_recipients_are_isolated(server):
    sender, _ = connector(server)
    batch = [message(i, personal=False) for i in range(1, 9)]
    batch[5] = message(6, to="not-an-address", personal=False)
    results = statuses(sender.send(batch))
    assert results.pop(6) == "failed" and set(results.values()) == {"sent"}
    reason = next(r.reason for r in sender.send([message(77, to="also bad")]))
    assert reason == "SendGrid 400: Does not contain a valid address."
    assert len(server.accepted) == 7


def test_413_is_split_and_a_single_oversized_message_fails(server):
    server.max_body = 6000
    sender, _ = connector(server)
    batch = [message(i, personal=False) for i in range(1, 41)]
    results = statuses(sender.send(batch))
    assert set(results.values()) == {"sent"} and len(server.accepted) == 40
    huge = OutgoingEmail(99, "s@example.com", "big@example.com", "Big", "<p>" + "x" * 8000 + "</p>", "x")
    [result] = sender.send([huge])
    assert result.status == "failed" and "too large" in result.reason


def test_429_waits_until_the_reset_then_continues(server):
    sender, waits = connector(server, clock=lambda: 1000.0)
    server.script = [lambda body: (429, {"X-RateLimit-Reset": "1004"}, b'{"errors":[{"message":"too many"}]}')]
    [result] = sender.send([message(1)])
    assert result.status == "sent" and waits == [pytest.approx(4.01)]
    assert len(server.requests) == 2


def test_5xx_backs_off_exponentially_then_gives_the_message_back(server):
    sender, waits = connector(server)
    server.script = [lambda body: (503, {}, b"{}"), lambda body: (500, {}, b"{}")]
    [result] = sender.send([message(1)])
    assert result.status == "sent" and waits == [1, 2]
    server.script = [lambda body: (502, {}, b"{}")] * 5
    [result] = sender.send([message(2)])
    assert result.status == "retry" and waits[2:] == [1, 2, 4, 8]  # bounded; not accepted, so resendable


def test_the_hand_off_is_asked_before_every_attempt_and_a_refused_message_never_leaves(server):
    sender, _ = connector(server, concurrency=1)
    asked: list[list[int]] = []
    owner = {"ours": True}

    def handoff(ids):
        asked.append(list(ids))
        return set(ids) if owner["ours"] else set()

    def rate_limited(body):
        owner["ours"] = False  # another worker takes the occurrence over while this one waits
        return (429, {"X-RateLimit-Reset": "0"}, b'{"errors":[{"message":"too many"}]}')

    server.script = [rate_limited]
    [result] = sender.send([message(1)], handoff)
    assert asked == [[1], [1]] and result.status == "not_ours"
    assert len(server.requests) == 1 and not server.accepted  # the retry after the wait never went


def test_no_answer_after_the_request_left_is_unknown_and_never_resent(server):
    sender, _ = connector(server)
    server.script = [lambda body: "drop"]
    [dropped] = sender.send([message(1)])
    server.script = [lambda body: "stall"]
    [stalled] = sender.send([message(2)])
    assert (dropped.status, stalled.status) == ("unknown", "unknown")
    assert len(server.requests) == 2  # each left once, neither twice
    [after] = sender.send([message(3)])
    assert after.status == "sent"  # a fresh connection afterwards


def test_sandbox_mode_is_a_dry_send_against_a_real_account(server):
    sender, _ = connector(server, sandbox_mode=True)
    [result] = sender.send([message(1)])
    assert result.status == "sent" and server.requests[0]["mail_settings"] == {"sandbox_mode": {"enable": True}}


def test_401_stops_all_sending_and_marks_nothing_sent(store, tmp_path, server):
    seed(
        store,
        customers=[
            {"id": f"c{i}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"} for i in range(12)
        ],
    )
    ws = write_workspace(
        tmp_path,
        [email_campaign()],
        config={
            "email": {
                "connector": "sendgrid",
                "unsubscribe_url": "https://shop.example/unsubscribe",
                "sendgrid": {"host": server.host},
            }
        },
    )
    runner = make_runner(ws, store, Clock(AT), environ={"SENDGRID_API_KEY": "SG.revoked", "NUDGE_SECRET": "s"})
    with pytest.raises(RuntimeFailure, match="refused the API key"):
        run_occurrence(runner, ws.campaigns["promo"].campaign, AT)
    runner.outputs.close()
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.status, deliveries.c.reason)).all()
    assert {r.status for r in rows} == {"pending"} and all("SENDGRID_API_KEY" in r.reason for r in rows)
    assert server.accepted == []


def test_the_api_key_and_addresses_never_reach_logs_or_errors(store, tmp_path, server, caplog, capsys):
    seed(
        store,
        customers=[
            {
                "id": f"c{i}",
                "first_name": f"P{i}",
                "email": f"secret.person{i}@example.com",
                "email_opt_in": True,
                "country": "US",
            }
            for i in range(6)
        ],
    )  # six different messages
    ws = write_workspace(
        tmp_path,
        [email_campaign()],
        config={
            "email": {
                "connector": "sendgrid",
                "unsubscribe_url": "https://shop.example/unsubscribe",
                "sendgrid": {"host": server.host, "timeout": 1},
            }
        },
    )
    server.script = [lambda body: "drop", lambda body: (400, {}, b'{"errors":[{"message":"bad"}]}')]
    with caplog.at_level(logging.DEBUG):
        runner = make_runner(ws, store, Clock(AT), environ={"SENDGRID_API_KEY": KEY, "NUDGE_SECRET": "s"})
        run_occurrence(runner, ws.campaigns["promo"].campaign, AT)
        runner.outputs.close()
    captured = capsys.readouterr()
    everything = caplog.text + captured.out + captured.err
    assert KEY not in everything and "secret.person" not in everything
    assert len(server.accepted) == 4


def test_a_key_in_config_is_refused_and_a_missing_one_is_clear(workspace_dir):
    from click.testing import CliRunner

    from engine.cli.main import main

    config = workspace_dir / "config.yaml"
    config.write_text("email:\n  connector: sendgrid\n  sendgrid:\n    api_key: SG.oops\n")
    result = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "validate"])
    assert result.exit_code == 2 and "SG.oops" not in result.output
    assert result.stderr.startswith(f"{config}:4:5: error: 'api_key': secrets do not belong in config.yaml")
    config.write_text(
        "email:\n  connector: sendgrid\n  unsubscribe_url: https://shop.example/u\n"
        "limits: {exclusive: {winback: 60d, birthday: 300d}}\n"  # the standard rules' groups
    )
    run = CliRunner().invoke(
        main, ["--workspace", str(workspace_dir), "run", "birthday"], env={"SENDGRID_API_KEY": "", "NUDGE_SECRET": "s"}
    )
    assert run.exit_code == 1 and "SENDGRID_API_KEY is not set" in run.stderr


def test_an_address_sendgrid_will_never_accept_is_suppressed_after_one_try(store, tmp_path, server):
    from datetime import timedelta

    from engine.store.tables import suppressions

    seed(
        store,
        customers=[
            {"id": "good", "email": "good@example.com", "email_opt_in": True, "country": "US"},
            {"id": "bad", "email": "bad@nodot", "email_opt_in": True, "country": "US"},
        ],
    )
    ws = write_workspace(
        tmp_path,
        [email_campaign(cooldown="0d")],
        config={
            "email": {
                "connector": "sendgrid",
                "unsubscribe_url": "https://shop.example/unsubscribe",
                "sendgrid": {"host": server.host},
            }
        },
    )
    environ = {"SENDGRID_API_KEY": server.api_key, "NUDGE_SECRET": "s"}
    first_day_requests = 0
    for day in range(2):
        at = AT + timedelta(days=day)
        runner = make_runner(ws, store, Clock(at), environ=environ)
        run_occurrence(runner, ws.campaigns["promo"].campaign, at)
        runner.outputs.close()
        first_day_requests = first_day_requests or len(server.requests)
    with store.engine.connect() as conn:
        ledger = sorted(conn.execute(sa.select(deliveries.c.customer_id, deliveries.c.status)).all())
        suppressed = conn.execute(sa.select(suppressions.c.email, suppressions.c.reason)).all()
    assert ledger == [("bad", "failed"), ("good", "sent"), ("good", "sent")]  # no second try for `bad`
    assert suppressed == [("bad@nodot", "invalid address")]
    later = [p["to"][0]["email"] for r in server.requests[first_day_requests:] for p in r["personalizations"]]
    assert later == ["good@example.com"]
