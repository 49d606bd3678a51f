"""The standard email and an MJML email opened in a real (headless) Chromium at a phone's and a
desktop's width: laid out as the design says (600 px column, 16 px sides on a phone, nothing
wider than the screen), Chinese drawn with a Chinese font. Screenshots go to
NUDGE_SCREENSHOTS (a folder) when it is set, to be looked at; docs/email-*.png came from here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.messages.actions import render_actions
from engine.messages.templates import make_environment
from tests.messages.test_email_html import LINKS, MJML, campaign
from tests.messages.test_standard_emails import standard_emails
from tests.support.devtools import Tab

GEOMETRY = """(() => {
  const box = (s) => document.querySelector(s).getBoundingClientRect();
  const content = document.querySelector('.content');
  return {
    container: Math.round(box('.container').width),
    padding: getComputedStyle(content).paddingLeft,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    heading: Math.round(box('h1').width),
    font: getComputedStyle(content).fontFamily,
    code: getComputedStyle(document.querySelector('.code')).fontSize,
  };
})()"""
# The rendered width of Chinese text: a font with the glyphs draws each as wide as a letter M or
# more; without one Chromium draws empty boxes of the same narrow width for every character.
HAN_WIDTH = """(() => {
  const c = document.createElement('canvas').getContext('2d'); c.font = '16px sans-serif';
  return [c.measureText('生日快乐').width, c.measureText('\\u{10FFFD}'.repeat(4)).width];
})()"""


def keep(picture: Path) -> None:
    folder = os.environ.get("NUDGE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / picture.name).write_bytes(picture.read_bytes())


@pytest.mark.parametrize(("width", "container", "padding"), [(375, 375, "16px"), (1024, 600, "40px")])
@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_the_birthday_email_fits_a_phone_and_a_desktop_in_both_languages(tmp_path, locale, width, container, padding):
    email = dict(standard_emails(locale))[f"birthday ({locale})"]
    page = tmp_path / f"birthday-{locale}.html"
    page.write_text(email.body, encoding="utf-8")
    with Tab(width=width, height=760) as tab:
        tab.open(page.as_uri())
        seen = tab.evaluate(GEOMETRY)
        assert (seen["container"], seen["padding"], seen["overflow"]) == (container, padding, 0), seen
        assert seen["code"] == "22px" and seen["heading"] <= container
        if locale == "zh-CN":
            assert "PingFang SC" in seen["font"]
            han, missing = tab.evaluate(HAN_WIDTH)
            assert han > missing and han >= 4 * 14, "no Chinese font: run `make chromium`"
        keep(tab.screenshot(tmp_path / f"email-birthday-{locale}-{width}.png"))


def test_an_mjml_email_is_one_column_with_a_button_on_a_phone(tmp_path):
    (tmp_path / "welcome.mjml.j2").write_text(MJML)
    from datetime import datetime, timezone

    context = {"customer": {"first_name": "Mei", "locale": "en"}, "code": "WELCOME", **LINKS}
    context["until"] = datetime(2026, 7, 1, tzinfo=timezone.utc)
    actions = campaign("welcome.mjml.j2", "Hi", preheader="Your code inside")
    email = render_actions(make_environment(tmp_path), actions, context, default_sender="s@x").emails[0]
    page = tmp_path / "welcome.html"
    page.write_text(email.body, encoding="utf-8")
    with Tab(width=375, height=640) as tab:
        tab.open(page.as_uri())
        button = tab.evaluate(
            "(() => { const r = [...document.querySelectorAll('a')].find(a => a.textContent.includes('Start'))"
            ".getBoundingClientRect(); return [r.width, r.height, document.documentElement.scrollWidth]; })()"
        )
        assert button[0] > 100 and button[1] >= 30 and button[2] == 375, button
        keep(tab.screenshot(tmp_path / "email-mjml-375.png"))
