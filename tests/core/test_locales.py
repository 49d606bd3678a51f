"""The one locale resolver: which template, subject and language a customer of a locale gets."""

from __future__ import annotations

from engine.core.locales import chain, pick, rendering, supported, template_names


def test_a_taiwanese_customer_falls_back_to_chinese_then_to_the_default():
    assert chain("zh-TW", "en") == ["zh-TW", "zh", "en"]
    assert chain("zh-Hant-TW", "en") == ["zh-Hant-TW", "zh-Hant", "zh", "en"]
    assert chain(None, "zh-CN") == ["zh-CN", "zh"]


def test_template_files_are_tried_most_specific_first_and_the_one_the_rule_names_last():
    assert template_names("welcome.html.j2", "zh-TW", "en") == [
        "welcome.zh-TW.html.j2",
        "welcome.zh.html.j2",
        "welcome.en.html.j2",
        "welcome.html.j2",
    ]
    assert template_names("shop/welcome.mjml.j2", "de", "en")[:2] == [
        "shop/welcome.de.mjml.j2",
        "shop/welcome.en.mjml.j2",
    ]


def test_a_subject_by_locale_picks_the_language_and_falls_back_to_default():
    subject = {"default": "Hello", "zh": "你好", "zh-CN": "您好"}
    assert pick(subject, "zh-CN") == "您好"
    assert pick(subject, "zh-TW") == "你好"  # no zh-TW: the language's entry
    assert pick(subject, "ja-JP") == "Hello"
    assert pick(subject, "ZH-cn") == "您好"  # tags compare without case


def test_the_dry_run_counts_customers_by_the_locale_they_are_served_in():
    shop = ["en", "zh-CN"]
    assert [supported(tag, shop, "en") for tag in ("zh-CN", "en-GB", "ja-JP", None, "zh-TW")] == [
        "zh-CN",
        "en",
        "en",
        "en",
        "en",
    ]


def test_a_customer_reads_their_own_variant_of_a_language_the_shop_writes_in():
    shop = ["en", "zh-CN"]
    assert rendering("en-GB", shop, "en") == "en-GB"  # English text, British dates
    assert rendering("ja-JP", shop, "en") == "en"  # the shop writes no Japanese: English throughout
    assert rendering(None, shop, "zh-CN") == "zh-CN"
    assert rendering("ja-JP", [], "en") == "ja-JP"  # no list of languages: the customer's own
