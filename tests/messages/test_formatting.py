"""Money, dates, numbers and names as a customer of each language expects them (Babel, CLDR)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.messages.actions import localized_context
from engine.messages.formatting import RenderSettings
from engine.messages.templates import make_environment, render_string

NBSP = "\xa0"


def render(text: str, locale: str | None, settings: RenderSettings | None = None, **context) -> str:
    settings = settings or RenderSettings(currency="CNY", zone="Asia/Shanghai")
    env = make_environment(Path("."), settings)
    customer = {"first_name": "Xiaoming", "last_name": "Wang", "locale": locale, "timezone": None}
    return render_string(env, text, localized_context({"customer": customer, **context}, settings))


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("zh-CN", ["¥1,234.50", "€1,234.50", "US$1,234.50"]),
        ("en-US", ["CN¥1,234.50", "€1,234.50", "$1,234.50"]),
        ("de", [f"1.234,50{NBSP}CN¥", f"1.234,50{NBSP}€", f"1.234,50{NBSP}$"]),
    ],
)
def test_money_in_yuan_euros_and_dollars_reads_as_each_language_writes_it(locale, expected):
    shown = render('{{ 1234.5 | money }}|{{ 1234.5 | money("EUR") }}|{{ 1234.5 | money("USD") }}', locale)
    assert shown.split("|") == expected


def test_numbers_and_dates_follow_the_customer_language():
    when = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)
    assert render("{{ 1234567.5 | number }}", "de") == "1.234.567,5"
    assert render('{{ at | date("long") }}', "zh-CN", at=when) == "2026年6月1日"
    assert render('{{ at | date("long") }}', "de", at=when) == "1. Juni 2026"
    assert render("{{ at | date }}", "en-US", at=when) == "Jun 1, 2026"


def test_a_date_is_the_customer_calendar_day_in_their_time_zone():
    late = datetime(2026, 6, 1, 20, 0, tzinfo=timezone.utc)  # already 2 June in Shanghai
    assert render('{{ at | date("long") }}', "en", at=late) == "June 2, 2026"  # config's zone
    customer = {"first_name": "A", "locale": "en", "timezone": "America/New_York"}
    env = make_environment(Path("."), RenderSettings(zone="Asia/Shanghai"))
    text = render_string(env, '{{ at | date("long") }}', {"customer": customer, "at": late, "locale": "en"})
    assert text == "June 1, 2026"  # the customer's own zone wins


def test_full_names_put_the_family_name_first_in_chinese_japanese_and_korean():
    assert render("{{ customer | full_name }}", "en-US") == "Xiaoming Wang"
    assert render("{{ customer | full_name }}", "zh-CN") == "Wang Xiaoming"
    env = make_environment(Path("."))
    han = {"first_name": "小明", "last_name": "王"}
    assert render_string(env, "{{ c | full_name }}", {"c": han, "locale": "zh-CN"}) == "王小明"  # no space in Han
    assert render_string(
        env, "{{ c | full_name }}", {"c": {"first_name": "민준", "last_name": "김"}, "locale": "ko"}
    ) == ("김민준")
    assert render_string(env, "{{ c | full_name }}", {"c": {"first_name": "Ann"}, "locale": "ja"}) == "Ann"


def test_a_coupon_amount_prints_as_money_in_the_workspace_currency():
    coupons = {"off": {"code": "X", "amount_off": 20.0, "percent_off": None}}
    assert render("Here is {{ coupons.off.amount_off }} off", "en", coupons=coupons) == "Here is CN¥20.00 off"
    assert render("立减 {{ coupons.off.amount_off }}", "zh-CN", coupons=coupons) == "立减 ¥20.00"
    assert render("{{ coupons.off.amount_off * 2 }}", "en", coupons=coupons) == "40.0"  # still a number
    euros = RenderSettings(currency="EUR")
    assert render("{{ coupons.off.amount_off }}", "de", euros, coupons=coupons) == f"20,00{NBSP}€"


def test_a_layout_picks_its_words_for_the_customer_through_the_one_resolver():
    words = '{{ {"default": "Unsubscribe", "zh-CN": "退订"} | localized }}'
    assert render(words, "zh-CN") == "退订"
    assert render(words, "zh-TW") == "Unsubscribe"  # no zh-TW, no zh: the default
    assert render("{{ locale | direction }}", "ar") == "rtl"


def test_formatting_something_that_is_not_a_number_names_the_filter():
    from engine.core.errors import RenderError

    with pytest.raises(RenderError, match="money needs a number, got dict"):
        render("{{ customer | money }}", "en")
