"""The MIME writer's address headers: a bare address is written as it is, anything else through
the standard library's address parser, and both read back the same."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.utils import formataddr, getaddresses

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.api import OutgoingEmail
from connectors.email.mime import _BARE_ADDRESS, mime_bytes

_CHARACTERS = st.sampled_from(list("abcXYZ019.!#$%&'*+/=?^_`{|}~-@ \"<>()[],;:\\é"))


@settings(max_examples=3000, deadline=None)
@given(st.text(_CHARACTERS, min_size=1, max_size=24))
def test_what_is_taken_for_a_bare_address_is_what_the_parser_would_write(value):
    if _BARE_ADDRESS.fullmatch(value):
        assert ", ".join(formataddr(pair) for pair in getaddresses([value])) == value


def test_senders_with_names_and_bare_recipients_read_back_as_written():
    email = OutgoingEmail(
        delivery_id=7,
        sender='"Shop, Inc." <hello@shop.example>',
        to="o'brien+vip@mail.example.org",
        subject="Hi",
        html="<p>Hi</p>",
        text="Hi\n",
    )
    parsed = message_from_bytes(mime_bytes(email), policy=policy.default)
    assert parsed["To"].addresses[0].addr_spec == "o'brien+vip@mail.example.org"
    assert parsed["From"].addresses[0].display_name == "Shop, Inc."
    assert parsed["From"].addresses[0].addr_spec == "hello@shop.example"
