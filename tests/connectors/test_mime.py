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


def test_the_message_id_is_on_the_from_domain_and_the_same_for_every_attempt():
    from engine.messages.email import build_email

    def built(delivery_id: int, sender: str = "Shop <Hello@Shop.Example>"):
        email = build_email(
            delivery_id=delivery_id,
            sender=sender,
            to="ann@mail.example.org",
            subject="Hi",
            body="<p>Hi</p>",
            is_html=True,
            unsubscribe_url="https://shop.example/u/t",
            campaign="promo",
        )
        return message_from_bytes(mime_bytes(email), policy=policy.default)["Message-ID"]

    first = built(7)
    assert first.startswith("<nudge.7.") and first.endswith("@shop.example>")
    assert built(7) == first and built(8) != first  # a retry keeps it, another delivery does not
    assert built(9, sender="no domain").endswith("@localhost>")
