"""SMS connectors against real peers: the outbox folder, and Twilio's official client against a
local server that speaks the Messages API (429, 5xx, bad numbers, stalls, dropped connections)."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.api import TEST_DELIVERY_ID, ConnectorFatal, OutgoingSms, SendResult
from connectors.registry import Group, load
from connectors.sms.outbox import SmsOutboxConnector
from connectors.sms.twilio import TwilioConnector
from engine.rules.channels_config import SmsConfig
from tests.support.pgserver import free_port
from tests.support.twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer

SENDER = "+15005550006"
ENVIRON = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}


def text(i: int, body: str | None = None) -> OutgoingSms:
    return OutgoingSms(delivery_id=i, to=f"+1415555{i:04d}", text=body or f"Your code SAVE{i} Reply STOP to opt out")


def statuses(results: list[SendResult]) -> list[tuple[int, str]]:
    return [(r.delivery_id, str(r.status)) for r in results]


def twilio_config(server: TwilioServer | None = None, **twilio) -> SmsConfig:
    settings = {"timeout": 0.5, **twilio}
    if server is not None:
        settings.setdefault("base_url", server.base_url)
    return SmsConfig.model_validate({"connector": "twilio", "from": SENDER, "twilio": settings})


@pytest.fixture
def server() -> Iterator[TwilioServer]:
    with TwilioServer() as running:
        yield running


def twilio(server: TwilioServer, environ: dict[str, str] | None = None, **settings) -> TwilioConnector:
    return TwilioConnector.from_config(twilio_config(server, **settings), Path("."), environ or ENVIRON)


# --- the contract, for each connector --------------------------------------------------------------


@pytest.fixture(params=["outbox", "twilio"])
def peer(request, tmp_path) -> Iterator[tuple]:
    """A connector built from config through the registry, and how to count what reached the world."""
    if request.param == "outbox":
        config = SmsConfig.model_validate({"from": SENDER, "outbox": {"dir": "sms-out"}})
        connector = load(Group.SMS, "outbox").from_config(config, tmp_path, {})
        yield connector, lambda: sorted(json.loads(p.read_text())["to"] for p in (tmp_path / "sms-out").glob("*.json"))
        return
    with TwilioServer() as running:
        connector = load(Group.SMS, "twilio").from_config(twilio_config(running), tmp_path, ENVIRON)
        yield connector, lambda: sorted(m["to"] for m in running.accepted)
        connector.close()


def test_every_message_is_sent_once_with_a_provider_id(peer):
    connector, arrived = peer
    results = connector.send([text(1), text(2), text(3)])
    assert statuses(results) == [(1, "sent"), (2, "sent"), (3, "sent")]
    assert all(r.provider_id for r in results) and len({r.provider_id for r in results}) == 3
    assert arrived() == ["+14155550001", "+14155550002", "+14155550003"]


def test_a_message_the_hand_off_refuses_never_leaves(peer):
    connector, arrived = peer
    results = connector.send([text(1), text(2), text(3)], handoff=lambda ids: {i for i in ids if i != 2})
    assert statuses(results) == [(1, "sent"), (2, "not_ours"), (3, "sent")]
    assert arrived() == ["+14155550001", "+14155550003"]


# --- the outbox -------------------------------------------------------------------------------------


def test_outbox_writes_one_readable_json_file_per_message(tmp_path):
    outbox = SmsOutboxConnector(tmp_path / "out", sender=SENDER)
    chinese = OutgoingSms(7, "+8613800138000", "生日快乐！优惠码 BDAY20 回T退订", encoding="UCS-2", segments=1)
    [result] = outbox.send([chinese])
    path = tmp_path / "out" / "000000000007.json"
    assert result.provider_id == path.name and outbox.was_sent(7) and not outbox.was_sent(8)
    assert "生日快乐" in path.read_text(encoding="utf-8")  # readable, not \u escapes
    assert json.loads(path.read_text()) == {
        "delivery_id": 7,
        "to": "+8613800138000",
        "from": SENDER,
        "text": "生日快乐！优惠码 BDAY20 回T退订",
        "encoding": "UCS-2",
        "segments": 1,
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["000000000007.json"]


def test_outbox_folder_is_relative_to_the_workspace_and_test_sends_never_overwrite(tmp_path):
    config = SmsConfig.model_validate({"from": SENDER, "outbox": {"dir": "texts"}})
    outbox = SmsOutboxConnector.from_config(config, tmp_path, {})
    first = outbox.send([text(TEST_DELIVERY_ID, "first test")])
    second = outbox.send([text(TEST_DELIVERY_ID, "second test")])
    files = sorted((tmp_path / "texts").glob("test-*.json"))
    assert len(files) == 2 and {first[0].provider_id, second[0].provider_id} == {f.name for f in files}
    assert sorted(json.loads(f.read_text())["text"] for f in files) == ["first test", "second test"]


def test_outbox_asks_the_hand_off_once_per_batch(tmp_path):
    asked: list[list[int]] = []
    SmsOutboxConnector(tmp_path).send([text(1), text(2)], handoff=lambda ids: asked.append(list(ids)) or set(ids))
    assert asked == [[1, 2]]


def test_a_full_disk_stops_the_batch_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    import connectors.outbox_files as outbox_module  # where both outboxes write their files

    opened = {"n": 0}

    def full_disk(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)  # noqa: SIM115 (returned to the caller, who closes it)
        opened["n"] += 1
        if opened["n"] > 1:  # the second file meets a full disk after part of it was written
            handle.write(b'{"delivery_id": ')
            handle.close()
            raise OSError(errno.ENOSPC, "No space left on device")
        return handle

    monkeypatch.setattr(outbox_module, "open", full_disk, raising=False)
    with pytest.raises(ConnectorFatal, match="No space left on device") as stopped:
        SmsOutboxConnector(tmp_path).send([text(1), text(2), text(3)])
    assert statuses(stopped.value.partial) == [(1, "sent")]  # 2 and 3 stay pending
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000000000001.json"]


# --- Twilio ------------------------------------------------------------------------------------------


def test_twilio_sends_the_text_from_the_configured_sender_with_the_status_callback(server):
    callback = "https://shop.example/twilio/status"
    sender = twilio(server, status_callback_url=callback)
    [result] = sender.send([text(1, "生日快乐！优惠码 BDAY20 回T退订")])
    [message] = server.accepted
    assert (result.status, result.provider_id) == ("sent", message["sid"])
    assert message["body"] == "生日快乐！优惠码 BDAY20 回T退订"
    assert (message["from"], message["messaging_service_sid"]) == (SENDER, None)
    # The receipt names the ledger row even when this answer (and so the SID) is lost.
    assert message["status_callback"] == callback + "?nudge_delivery=1"
    sender.send([text(TEST_DELIVERY_ID), text(2)])
    assert [m["status_callback"] for m in server.accepted[1:]] == [callback, callback + "?nudge_delivery=2"]


def test_twilio_sends_through_a_messaging_service_named_by_the_environment(server):
    config = SmsConfig.model_validate(
        {"connector": "twilio", "messaging_service_sid_env": "SHOP_SERVICE", "twilio": {"base_url": server.base_url}}
    )
    environ = {**ENVIRON, "SHOP_SERVICE": "MG" + "a" * 32}
    TwilioConnector.from_config(config, Path("."), environ).send([text(1)])
    [message] = server.accepted
    assert (message["messaging_service_sid"], message["from"]) == ("MG" + "a" * 32, None)
    with pytest.raises(ConnectorFatal, match="SHOP_SERVICE"):
        TwilioConnector.from_config(config, Path("."), ENVIRON)


@pytest.mark.parametrize("variable", ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"])
def test_a_missing_credential_is_named(variable):
    environ = {k: v for k, v in ENVIRON.items() if k != variable}
    with pytest.raises(ConnectorFatal, match=f"{variable} is not set"):
        TwilioConnector.from_config(twilio_config(), Path("."), environ)


@pytest.mark.parametrize(("behaviour", "code"), [("429", 20429), ("500", 20500)])
def test_rate_limits_and_server_errors_are_retried_later_and_stop_the_batch(server, behaviour, code):
    server.script["+14155550002"] = behaviour
    results = twilio(server).send([text(1), text(2), text(3)])
    assert statuses(results) == [(1, "sent"), (2, "retry"), (3, "retry")]
    assert results[1].reason.startswith(f"twilio {code}:")
    assert [m["to"] for m in server.accepted] == ["+14155550001"]
    assert server.requests == 2  # message 3 was not tried against a provider that just refused


@pytest.mark.parametrize(("behaviour", "code"), [("bad-number", 21211), ("unsubscribed", 21610), ("not-mobile", 21614)])
def test_a_number_twilio_will_never_reach_fails_with_its_code_and_the_batch_goes_on(server, behaviour, code):
    server.script["+14155550002"] = behaviour
    results = twilio(server).send([text(1), text(2), text(3)])
    assert statuses(results) == [(1, "sent"), (2, "failed"), (3, "sent")]
    assert results[1].reason.startswith(f"twilio {code}: ") and "Unable to create" not in results[1].reason
    assert results[1].bad_address and not results[0].bad_address
    assert server.arrived("+14155550002") == 0 and len(server.accepted) == 2


def test_the_invalid_number_reason_is_twilios_own_words(server):
    [result] = twilio(server).send([OutgoingSms(1, "12345", "hi")])
    assert result.reason == "twilio 21211: The 'To' number 12345 is not a valid phone number."


@pytest.mark.parametrize("behaviour", ["stall", "drop"])
def test_no_answer_after_sending_is_unknown_and_the_rest_waits(server, behaviour):
    server.script["+14155550002"] = behaviour
    results = twilio(server).send([text(1), text(2), text(3)])
    assert statuses(results) == [(1, "sent"), (2, "unknown"), (3, "retry")]
    assert server.arrived("+14155550002") == 1 and server.arrived("+14155550003") == 0


def test_a_refused_connection_is_retried_later():
    closed = f"http://127.0.0.1:{free_port()}"
    sender = TwilioConnector.from_config(twilio_config(base_url=closed), Path("."), ENVIRON)
    results = sender.send([text(1), text(2)])
    assert statuses(results) == [(1, "retry"), (2, "retry")] and "unreachable" in results[0].reason


def test_wrong_credentials_stop_everything_and_nothing_is_marked_sent(server):
    sender = twilio(server, environ={**ENVIRON, "TWILIO_AUTH_TOKEN": "wrong"})
    with pytest.raises(ConnectorFatal, match="twilio 20003") as stopped:
        sender.send([text(1), text(2)])
    assert stopped.value.partial == [] and server.accepted == [] and server.requests == 1
    with pytest.raises(ConnectorFatal):  # and it stays stopped: no request per later batch
        sender.send([text(3)])
    assert server.requests == 1


def test_a_sender_twilio_refuses_stops_sending_instead_of_failing_every_customer(server):
    server.script["+14155550002"] = "bad-sender"
    with pytest.raises(ConnectorFatal, match="twilio 21212") as stopped:
        twilio(server).send([text(1), text(2), text(3)])
    assert statuses(stopped.value.partial) == [(1, "sent")]
    assert server.arrived("+14155550003") == 0


def test_the_hand_off_is_asked_right_before_each_request(server):
    seen: list[tuple[list[int], int]] = []

    def handoff(ids):
        seen.append((list(ids), len(server.accepted)))
        return set(ids)

    twilio(server).send([text(1), text(2), text(3)], handoff=handoff)
    assert seen == [([1], 0), ([2], 1), ([3], 2)]


def test_a_store_outage_at_the_hand_off_keeps_what_already_left(server):
    def handoff(ids):
        if ids == [2]:
            raise ConnectorFatal("store unreachable at hand-off: OperationalError")
        return set(ids)

    with pytest.raises(ConnectorFatal, match="store unreachable") as stopped:
        twilio(server).send([text(1), text(2), text(3)], handoff=handoff)
    assert statuses(stopped.value.partial) == [(1, "sent")]  # recorded as sent, never resent
    assert [m["to"] for m in server.accepted] == ["+14155550001"]
