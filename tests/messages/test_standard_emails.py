"""The standard emails of `nudge init`, in English and Chinese, as they are sent: laid out for mail
clients that drop <body> and <head> styles, in the customer's language, with a preheader that
inboxes show and the text part does not."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from engine.messages.actions import preview_coupons, render_actions
from engine.messages.context import MatchedEvents
from engine.messages.email import SAMPLE_LINKS
from engine.messages.email_html import render_email_body
from engine.messages.shop import sample_names
from engine.messages.templates import LastEvents
from engine.rules.actions import EmailAction
from engine.rules.journey import expand
from engine.workspace.loader import load_workspace
from tests.support.email_layout import layout_problems
from tests.support.store import ROOT

AT = datetime(2026, 6, 1, 10, 0, tzinfo=timezone.utc)
OLD_LAYOUT = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>x</title></head>'
    '<body style="font-family: Helvetica, Arial, sans-serif; max-width: 600px; margin: 0 auto; color: #222;">'
    "<h1>Hi</h1></body></html>"
)


def context(unit, locale: str) -> dict:
    viewed = {"product_name": "Leather Boots", "category": "shoes", "url": "https://shop.example/boots"}
    return {
        "customer": {"id": "c1", "first_name": "Mei", "last_name": "Lin", "locale": locale, "timezone": None},
        "campaign": {"name": unit.campaign, "description": None, "priority": 0},
        "coupons": preview_coupons(unit, AT),
        "at": AT,
        "last": LastEvents(),
        "matched": MatchedEvents(product_view={"type": "product_view", "occurred_at": AT, "properties": viewed}),
        **sample_names(),  # products and recommend(): stand-in product cards
        **SAMPLE_LINKS,
    }


def standard_emails(locale: str):
    """(label, rendered email) of every email of the standard campaigns for a customer of `locale`."""
    workspace = load_workspace(ROOT)
    env = workspace.environment()
    for loaded in workspace.campaigns.values():
        for unit in expand(loaded.campaign):
            for index, action in enumerate(unit.actions):
                if isinstance(action, EmailAction):
                    job = render_actions(env, unit, context(unit, locale), default_sender="s@x", applies={index})
                    yield f"{unit.campaign} ({locale})", job.emails[0]


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_every_standard_email_keeps_its_layout_where_gmail_drops_body_and_head_styles(locale):
    emails = list(standard_emails(locale))
    assert len(emails) == 5
    for label, email in emails:
        assert layout_problems(email.body) == [], label
        assert f'<html lang="{locale}" dir="ltr"' in email.body, label
        assert 'name="color-scheme"' in email.body and "max-width: 600px" in email.body, label
        assert "@media only screen and (max-width: 620px)" in email.body, label  # 16 px sides on phones


def test_the_confirmation_email_keeps_its_layout_in_both_languages():
    env = load_workspace(ROOT).environment()
    for locale, words in (("en", "Confirm my address"), ("zh-CN", "确认我的地址")):
        customer = {"first_name": "Mei", "locale": locale}
        page = {"customer": customer, "at": AT, "locale": locale, "confirm_url": "https://x/c/T", **SAMPLE_LINKS}
        body = render_email_body(env, "confirm_email.html.j2", page, locale).body
        assert layout_problems(body) == [] and words in body


def test_the_chinese_emails_speak_chinese_from_subject_to_footer():
    emails = dict(standard_emails("zh-CN"))
    birthday = emails["birthday (zh-CN)"]
    assert birthday.subject == "Lin Mei，生日快乐！送您一份礼物" and birthday.template == "birthday.zh-CN.html.j2"
    assert "有效期一周，至 2026年6月8日。" in birthday.text
    assert "您收到这封邮件，是因为您订阅了本店的资讯。" in birthday.text and "退订 (https://" in birthday.text
    english = dict(standard_emails("en"))["birthday (en)"]
    assert "Valid for a week, until June 8, 2026." in english.text and "Unsubscribe (https://" in english.text


def test_the_preheader_is_in_the_inbox_line_and_not_in_the_text_part():
    birthday = dict(standard_emails("en"))["birthday (en)"]
    assert 'class="preheader" style="display: none;' in birthday.body
    assert "20% off anything, for a week" in birthday.body
    assert "for a week" not in birthday.text.split("\n")[0] and birthday.text.startswith("Happy birthday, Mei!")


def test_the_button_is_a_table_cell_outlook_paints_and_a_link_everyone_else_follows():
    browse = dict(standard_emails("en"))["browse-abandonment (en)"]
    assert 'bgcolor="#1a56db"' in browse.body and 'href="https://shop.example/boots"' in browse.body
    assert "Take another look (https://shop.example/boots)" in browse.text


def test_the_check_finds_what_the_old_layout_and_a_linked_stylesheet_lose():
    assert layout_problems(OLD_LAYOUT) == [
        "<body> alone has font-family: Helvetica, Arial, sans-serif",
        "<body> alone has max-width: 600px",
        "<body> alone has margin: 0 auto",
        "<body> alone has color: #222",
    ]
    head = (
        '<html><head><link rel="stylesheet" href="s.css"><style>@media (max-width: 1px) { p { color: red } } '
        '.x { padding: 4px }</style></head><body><p class="x">a</p></body></html>'
    )
    assert layout_problems(head) == [
        "<style> rule '.x' is not inlined: padding",
        "linked stylesheet 's.css': mail clients do not load it",
    ]
