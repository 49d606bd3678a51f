"""validate renders every email in every language the shop writes in: a template that fails in
one language is an error naming it, a subject left untranslated or an email Gmail would clip a
warning; config's `locales` and `currency` are checked against CLDR."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from engine.cli.main import main
from tests.support.helpers import write_workspace

SHOP = {"locales": {"default": "en", "supported": ["en", "zh-CN"]}, "currency": "CNY"}


def nudge(root, *args):
    return CliRunner().invoke(main, ["--workspace", str(root), *args])


def shop(root, subject, templates: dict[str, str], config: dict | None = None):
    campaign = {
        "campaign": "welcome",
        "schedule": "0 9 * * *",
        "audience": {"attribute": "country", "eq": "CN"},
        "actions": [{"email": {"template": "welcome.html.j2", "subject": subject}}],
    }
    write_workspace(root, [campaign], config={**SHOP, **(config or {})}, templates=templates)
    return root / "rules" / "welcome.yaml"


def test_a_template_that_fails_in_one_language_is_an_error_naming_that_language(tmp_path):
    rule = shop(
        tmp_path,
        {"default": "Hi", "zh-CN": "您好"},
        {"welcome.html.j2": "<p>Hi</p>", "welcome.zh-CN.html.j2": "<p>{{ customer.first_name | money }}</p>"},
    )
    result = nudge(tmp_path, "validate")
    assert result.exit_code == 2
    assert (
        f"{rule}:7:3: error: does not render for a sample customer (zh-CN): welcome.zh-CN.html.j2:1: " in result.stderr
    )
    assert "money needs a number, got 'Alex'" in result.stderr and "(en)" not in result.stderr


def test_a_subject_without_a_translation_is_a_warning_not_an_error(tmp_path):
    rule = shop(tmp_path, {"default": "Hi", "de": "Hallo"}, {"welcome.html.j2": "<p>Hi</p>"})
    result = nudge(tmp_path, "validate")
    assert result.exit_code == 0, result.stderr
    warning = (
        f"{rule}:7:3: warning: email (zh-CN): the subject has no zh-CN translation: customers of zh-CN get the "
        "default subject"
    )
    assert warning in result.stderr
    assert "(de): the subject has no" not in result.stderr  # de has one (and is rendered too)


def test_a_chinese_template_under_an_english_subject_is_flagged(tmp_path):
    rule = shop(tmp_path, "Hi", {"welcome.html.j2": "<p>Hi</p>", "welcome.zh-CN.html.j2": "<p>您好</p>"})
    result = nudge(tmp_path, "validate")
    assert result.exit_code == 0
    assert (
        f"{rule}:7:3: warning: email (zh-CN): the subject has no zh-CN translation: customers of zh-CN get the "
        "subject as written with welcome.zh-CN.html.j2"
    ) in result.stderr


def test_an_email_over_100_kb_is_a_warning_gmail_would_clip_it(tmp_path):
    big = "<p>" + "A long catalogue line. " * 5600 + "</p>"
    shop(tmp_path, {"default": "Hi", "zh-CN": "您好"}, {"welcome.html.j2": "<p>Hi</p>", "welcome.zh-CN.html.j2": big})
    result = nudge(tmp_path, "validate")
    assert result.exit_code == 0
    assert "warning: email (zh-CN): the email is 126 KB: Gmail clips messages over about 100 KB" in result.stderr
    assert "email (en): the email is" not in result.stderr


def test_unknown_locales_and_currencies_are_config_errors(tmp_path):
    shop(tmp_path, "Hi", {"welcome.html.j2": "<p>Hi</p>"})
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"locales": {"default": "xx-YY", "supported": ["en", "klingon"]}, "currency": "ABC"})
    )
    result = nudge(tmp_path, "validate")
    assert result.exit_code == 2
    assert "unknown locale 'xx-YY': use a BCP 47 tag such as en, en-US, de or zh-CN" in result.stderr
    assert "unknown locale 'klingon'" in result.stderr
    assert "unknown currency 'ABC': use an ISO 4217 code such as CNY, EUR or USD" in result.stderr
