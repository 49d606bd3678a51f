"""A text's encoding and segment count as the network bills it, and the opt-out hint every
marketing text ends with."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.messages.sms import GSM_BASIC, MAX_SEGMENTS, measure, opt_out_hint, with_opt_out


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),  # 2 × 153
        ("a" * 307, "GSM-7", 3),
        ("优" * 70, "UCS-2", 1),
        ("优" * 71, "UCS-2", 2),
        ("优" * 134, "UCS-2", 2),  # 2 × 67
        ("优" * 135, "UCS-2", 3),
        ("", "GSM-7", 1),
    ],
)
def test_single_and_concatenated_limits(text, encoding, segments):
    measured = measure(text)
    assert (measured.encoding, measured.segments) == (encoding, segments)


def test_an_extension_character_costs_two_septets():
    assert measure("a" * 158 + "€").segments == 1  # 160 septets
    assert measure("a" * 159 + "€").segments == 2  # 161
    assert measure("a" * 159 + "{").segments == 2
    euro = measure("Only 5€ today {code}")
    assert (euro.encoding, euro.characters, euro.units) == ("GSM-7", 20, 23)


def test_an_escape_is_never_cut_from_its_character_across_segments():
    # 152 septets then a two-septet € that would straddle the first segment's end (153).
    assert measure("a" * 152 + "€" + "a" * 152).segments == 3
    assert measure("a" * 151 + "€" + "a" * 153).segments == 2  # 153 + 153 exactly


def test_an_emoji_is_two_utf16_units_and_makes_the_text_ucs2():
    assert measure("a" * 68 + "🎉").segments == 1  # 70 units
    emoji = measure("a" * 69 + "🎉")
    assert (emoji.encoding, emoji.characters, emoji.units, emoji.segments) == ("UCS-2", 70, 71, 2)


def test_characters_outside_gsm_make_the_whole_text_ucs2():
    assert measure("Don't miss it").encoding == "GSM-7"
    assert measure("Don’t miss it").encoding == "UCS-2"  # a typographic apostrophe
    assert measure("Tab\there").encoding == "UCS-2"
    assert measure("Café, Straße, ÆØÅ, ¿ñ? £5 ¥5 §1 @ _").encoding == "GSM-7"
    assert measure("生日快乐，送你一张优惠券").encoding == "UCS-2"


def test_max_segments_is_where_validate_draws_the_line():
    assert measure("a" * 153 * MAX_SEGMENTS).segments == MAX_SEGMENTS
    assert measure("a" * (153 * MAX_SEGMENTS + 1)).segments == MAX_SEGMENTS + 1


# No deadline: hypothesis fails an example slower than 200 ms as "unreliable timings" when its replay
# is fast, and a loaded machine can pause the test process that long in any example.
@settings(deadline=None)
@given(st.text(alphabet=sorted(GSM_BASIC), max_size=2000))
def test_basic_gsm_texts_are_one_septet_a_character(text):
    measured = measure(text)
    expected = 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    assert (measured.encoding, measured.units, measured.segments) == ("GSM-7", len(text), expected)


@pytest.mark.parametrize(
    ("locale", "hint"),
    [
        (None, "Reply STOP to opt out"),
        ("en", "Reply STOP to opt out"),
        ("en-GB", "Reply STOP to opt out"),
        ("de", "Reply STOP to opt out"),
        ("zh", "回T退订"),
        ("zh-CN", "回T退订"),
        ("zh_TW", "回T退订"),
    ],
)
def test_the_hint_follows_the_customers_language(locale, hint):
    assert opt_out_hint(locale) == hint


def test_an_unknown_language_falls_back_to_the_workspace_default_then_english():
    assert opt_out_hint("fr", default="zh-CN") == "回T退订"
    assert opt_out_hint(None, default="zh-CN") == "回T退订"
    assert opt_out_hint("fr", default="de") == "Reply STOP to opt out"
    assert with_opt_out("Bonjour", "fr", default="zh-CN") == "Bonjour 回T退订"


def test_the_hint_is_appended_once():
    assert with_opt_out("Your code SAVE20 ends Sunday.", "en") == "Your code SAVE20 ends Sunday. Reply STOP to opt out"
    assert with_opt_out("生日快乐！优惠码 BDAY20", "zh-CN") == "生日快乐！优惠码 BDAY20 回T退订"
    assert with_opt_out("Hello\nYour code: SAVE20\n", "en") == "Hello\nYour code: SAVE20\nReply STOP to opt out"
    once = with_opt_out("Sale ends Sunday.", "en")
    assert with_opt_out(once, "en") == once


@pytest.mark.parametrize(
    "text",
    [
        "Sale! Text stop to leave",
        "Sale! STOP=end",
        "生日快乐，回复TD退订",
        "生日快乐 退订回复T",
        "优惠券已到账，回T",
        "Offer inside. Reply td to unsubscribe",
    ],
)
def test_a_text_that_already_says_how_to_opt_out_is_left_alone(text):
    assert with_opt_out(text, "en") == text


@pytest.mark.parametrize("text", ["Nonstop deals", "Shop Ltd: new arrivals", "STOPPED by? see us"])
def test_opt_out_words_inside_other_words_do_not_count(text):
    assert with_opt_out(text, "en").endswith("Reply STOP to opt out")
