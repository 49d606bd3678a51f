"""The SendGrid benchmark's floor: the bare client's requests reach the real sink whole (each one
validated and counted) and a refused reference is void, never a number."""

from __future__ import annotations

import pytest

from bench.sink_client import blast
from tests.support.sendgrid_server import SendgridServer


def test_the_bare_client_sends_every_request_and_the_sink_accepts_each():
    with SendgridServer(api_key="SG.bench") as sink:
        found = blast(sink.host, 300, "SG.bench", 3000, seconds=60, connections=4)
    assert found["requests"] == 300 and sink.request_count == 300 and sink.accepted_count == 300
    assert sink.connections == 4  # kept alive, one request after another on each
    assert 2800 <= sink.body_bytes / 300 <= 3200  # about the size asked for
    assert {a["subject"] for a in sink.accepted} >= {"Reference 1", "Reference 299"}


def test_a_reference_the_sink_refused_is_void():
    with SendgridServer(api_key="SG.other") as sink, pytest.raises(SystemExit, match="answered 401"):
        blast(sink.host, 50, "SG.bench", 3000, seconds=60)
