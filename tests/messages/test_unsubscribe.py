"""Unsubscribe tokens are opaque (nothing about the customer can be read in them) and cannot be
forged, tampered with, cut short or moved to another key; links from before opaque tokens still
verify, with the same expiry and the same refusal of the public development key."""

from __future__ import annotations

import base64
import string
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.errors import TokenError
from engine.messages.unsubscribe import (
    DEVELOPMENT_KEY_REASON,
    DEVELOPMENT_SECRET,
    MAX_AGE,
    Unsubscribe,
    sign,
    verify,
)
from tests.support.tokens import GOLDEN_LEGACY, legacy_sign, readable

SECRET = b"test-secret"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
URL_SAFE = string.ascii_letters + string.digits + "-_"
LONG_ADDRESS = "first.middle.last+" + "x" * 40 + "@" + ".".join(["department"] * 17) + ".example"
CUSTOMERS = [
    ("annabel", "annabel@example.com", "promo"),
    ("send-test", "you@shop.example", "winback-2026"),
    ("cust-000000123456789", LONG_ADDRESS, "lapsed-buyers"),
    ("客户-4242", "张伟@例子.中国", "春节促销"),
    ("jürgen-7", "jürgen.müller@straße.de", "sommerschluss"),
]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize(("customer", "address", "campaign"), CUSTOMERS)
def test_a_token_shows_no_address_customer_or_campaign(customer, address, campaign):
    local, domain = address.split("@")
    token = sign(SECRET, customer, address, campaign, NOW)
    assert readable(token, address, local, domain, customer, campaign) == []
    assert verify(SECRET, token, NOW) == Unsubscribe(customer, address, campaign, NOW)
    assert sign(SECRET, customer, address, campaign, NOW) != token  # two links to one customer do not match


@settings(max_examples=300, deadline=None)
@given(
    customer=st.text(min_size=6, max_size=255),
    local=st.text(min_size=6, max_size=64),
    domain=st.text(min_size=6, max_size=255),
    campaign=st.text(min_size=6, max_size=100),
    age=st.integers(0, int(MAX_AGE.total_seconds())),
)
def test_any_customer_round_trips_and_stays_unreadable(customer, local, domain, campaign, age):
    issued = NOW - timedelta(seconds=age)
    token = sign(SECRET, customer, f"{local}@{domain}", campaign, issued)
    assert readable(token, customer, local, domain, campaign) == []
    assert verify(SECRET, token, NOW) == Unsubscribe(customer, f"{local}@{domain}", campaign, issued)


def refusal(token: str, secret: bytes = SECRET, now: datetime = NOW) -> str:
    with pytest.raises(TokenError) as caught:
        verify(secret, token, now)
    return str(caught.value)


def test_every_changed_character_truncation_and_insertion_is_refused():
    token = sign(SECRET, "annabel", "annabel@example.com", "promo", NOW)
    assert set(token) <= set(URL_SAFE)  # goes into a URL and a List-Unsubscribe header unquoted
    for i, original in enumerate(token):
        for other in URL_SAFE.replace(original, "") + ".=+/%~ ":
            refusal(token[:i] + other + token[i + 1 :])
    for i in range(len(token) + 1):
        for extra in "A_.=":
            refusal(token[:i] + extra + token[i:])
    for end in range(len(token)):
        assert refusal(token[:end]) != "expired token"
        refusal(token[end:] if end else token[1:])


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_random_byte_flips_never_verify(data):
    token = sign(SECRET, "annabel", "annabel@example.com", "promo", NOW)
    raw = bytearray(unb64(token))
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    changed = b64(bytes(raw))
    if changed != token:
        refusal(changed)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=150).map(b64)))
def test_garbage_is_refused_with_a_token_error(text):
    refusal(text)


def test_another_key_an_old_token_and_the_development_key():
    token = sign(SECRET, "annabel", "annabel@example.com", "promo", NOW)
    assert refusal(token, secret=b"another-secret-of-the-same-shop") == "bad signature"
    assert refusal(token, now=NOW + MAX_AGE + timedelta(seconds=1)) == "expired token"
    assert verify(SECRET, token, NOW + MAX_AGE).email == "annabel@example.com"
    with pytest.raises(ValueError, match="development key"):
        sign(DEVELOPMENT_SECRET, "annabel", "annabel@example.com", "promo", NOW)


def test_links_signed_before_opaque_tokens_still_verify_as_they_did():
    assert verify(SECRET, GOLDEN_LEGACY, NOW) == Unsubscribe("ann", "ann@example.com", "promo", NOW)
    assert refusal(GOLDEN_LEGACY, now=NOW + MAX_AGE + timedelta(seconds=1)) == "expired token"
    assert refusal(GOLDEN_LEGACY, secret=b"another-secret") == "bad signature"
    body, mac = GOLDEN_LEGACY.split(".")
    other_body = legacy_sign(SECRET, "bob", "bob@example.com", "promo", NOW).split(".")[0]
    assert refusal(f"{other_body}.{mac}") == "bad signature"
    assert refusal(f"{body}.{mac[:-4]}") == "bad signature"
    forged = legacy_sign(DEVELOPMENT_SECRET, "ann", "ann@example.com", "promo", NOW)
    assert refusal(forged) == DEVELOPMENT_KEY_REASON
    chinese = legacy_sign(SECRET, "客户", "张伟@例子.中国", "春节", NOW)
    assert verify(SECRET, chinese, NOW) == Unsubscribe("客户", "张伟@例子.中国", "春节", NOW)
