"""A newsletter's CSS inlining and text part are worked out once for all its recipients, and each
still gets exactly what working them out for that recipient alone gives."""

from __future__ import annotations

from engine.messages.email import links
from engine.messages.email_html import inline_css
from engine.messages.own_links import MARK, own_links, without_own_links
from engine.messages.textify import html_to_text

STYLE = "a { color: #b91c1c } .small { font-size: 12px } @media (max-width: 600px) { p { margin: 0 } }"
PAGE = (
    "<html><head><style>"
    + STYLE
    + """</style></head>
<body><h1>{greeting}</h1><p>New in the shop: linen shirts &amp; summer dresses.</p>
<p class="small"><a href="{preferences_url}">Your preferences</a> · <a href="{unsubscribe_url}">Unsubscribe</a></p>
<p class="small">Or paste {unsubscribe_url} into your browser.</p></body></html>"""
)


def page(greeting: str, own: dict[str, str]) -> str:
    markup = PAGE.replace("{greeting}", greeting)
    for name, url in own.items():
        markup = markup.replace("{" + name + "}", url)
    return markup


def counted(step):
    calls = []

    def run(markup: str) -> str:
        calls.append(markup)
        return step(markup)

    return run, calls


def recipients(base: str = "https://shop.example/u") -> list[dict[str, str]]:
    return [links(base, f"token{n}.abc_{n}-x") for n in range(4)]


def test_one_newsletter_inlined_and_textified_once_each_recipient_exact():
    for step in (inline_css, html_to_text):
        run, calls = counted(step)
        for own in recipients():
            markup = page("Hi there, friend", own)
            assert without_own_links(run, markup, own) == step(markup)
        assert len(calls) == 1  # worked out once, for the first recipient


def test_personal_content_is_worked_out_for_each_recipient():
    run, calls = counted(inline_css)
    for number, own in enumerate(recipients()):
        markup = page(f"Hi Ana {number}", own)
        assert without_own_links(run, markup, own) == inline_css(markup)
    assert len(calls) == 4


def test_links_an_html_writer_would_escape_are_left_in_place():
    for step in (inline_css, html_to_text):
        run, calls = counted(step)
        for own in recipients("https://shop.example/u?lang=en&src=mail"):
            escaped = page("Hi there, friend", {k: v.replace("&", "&amp;") for k, v in own.items()})
            raw = page("Hi there, friend", own)  # a template that wrote the link out unescaped
            assert without_own_links(run, escaped, own) == step(escaped)
            assert without_own_links(run, raw, own) == step(raw)
        assert len(calls) == 8  # never taken out: worked out for each


def test_content_that_already_holds_the_marker_is_worked_out_as_it_is():
    run, calls = counted(html_to_text)
    for own in recipients():
        markup = page(f"Hi {MARK}0- friend", own)
        assert without_own_links(run, markup, own) == html_to_text(markup)
    assert len(calls) == 4


def test_the_links_a_template_gets_are_the_ones_taken_out():
    own = links("https://shop.example/u", "t1")
    assert own_links({**own, "customer": {"first_name": "Ana"}, "preheader": ""}) == own
