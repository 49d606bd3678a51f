"""An email as it leaves: the template and subject for the customer's locale, `<style>` rules moved
inline (media queries kept), MJML compiled, and a text alternative a person can read."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.errors import RenderError
from engine.messages.actions import reads, render_actions
from engine.messages.email import build_email
from engine.messages.formatting import RenderSettings
from engine.messages.templates import make_environment
from engine.rules.campaign import Campaign

LINKS = {"unsubscribe_url": "https://shop.example/u/T", "preferences_url": "https://shop.example/p/T"}


def campaign(template: str, subject, preheader=None) -> Campaign:
    email = {"template": template, "subject": subject, **({"preheader": preheader} if preheader else {})}
    return Campaign.model_validate(
        {
            "campaign": "hello",
            "schedule": "0 9 * * *",
            "audience": {"attribute": "country", "eq": "CN"},
            "actions": [{"email": email}],
        }
    )


def rendered(tmp_path: Path, locale: str | None, subject="Hi", settings=None, template="welcome.html.j2"):
    customer = {"id": "c1", "first_name": "Mei", "last_name": "Lin", "locale": locale, "timezone": None}
    env = make_environment(tmp_path, settings or RenderSettings())
    actions = render_actions(env, campaign(template, subject), {"customer": customer, **LINKS}, default_sender="s@x")
    return actions.emails[0]


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    (tmp_path / "welcome.html.j2").write_text("<p>Welcome</p>")
    (tmp_path / "welcome.zh.html.j2").write_text("<p>欢迎 ({{ locale }})</p>")
    (tmp_path / "welcome.zh-CN.html.j2").write_text("<p>欢迎光临</p>")
    return tmp_path


def test_each_customer_gets_the_most_specific_template_of_their_locale(templates):
    assert rendered(templates, "zh-CN").body == "<p>欢迎光临</p>"
    taiwan = rendered(templates, "zh-TW")
    assert (taiwan.body, taiwan.template) == ("<p>欢迎 (zh-TW)</p>", "welcome.zh.html.j2")  # zh-TW → zh
    assert rendered(templates, "en-US").body == "<p>Welcome</p>"  # → the file the rule names
    assert rendered(templates, None).body == "<p>Welcome</p>"


def test_customers_without_a_locale_get_the_workspace_default(templates):
    chinese_shop = RenderSettings(default_locale="zh-CN")
    assert rendered(templates, None, settings=chinese_shop).body == "<p>欢迎光临</p>"


def test_a_template_added_while_running_is_used_from_the_next_message_on(templates):
    env = make_environment(templates)
    context = {"customer": {"locale": "de"}, **LINKS}
    first = render_actions(env, campaign("welcome.html.j2", "Hi"), context, default_sender="s@x").emails[0]
    (templates / "welcome.de.html.j2").write_text("<p>Willkommen</p>")
    later = render_actions(env, campaign("welcome.html.j2", "Hi"), context, default_sender="s@x").emails[0]
    assert (first.body, later.body) == ("<p>Welcome</p>", "<p>Willkommen</p>")


def test_the_subject_is_chosen_by_locale_like_the_template(templates):
    subject = {"default": "Welcome, {{ customer.first_name }}", "zh-CN": "{{ customer | full_name }}，欢迎光临"}
    assert rendered(templates, "zh-CN", subject).subject == "Lin Mei，欢迎光临"
    assert rendered(templates, "fr-FR", subject).subject == "Welcome, Mei"


def test_a_locale_variant_that_reads_last_events_makes_delivery_load_them(templates):
    (templates / "welcome.zh-CN.html.j2").write_text("<p>{{ last.purchase.properties.amount }}</p>")
    assert reads(make_environment(templates), campaign("welcome.html.j2", "Hi"), "last")


def test_a_style_rule_ends_up_inline_and_the_media_query_stays_in_the_head(tmp_path):
    (tmp_path / "styled.html.j2").write_text(
        "<html><head><style>.box { padding: 32px; color: #222 } "
        "@media (max-width: 620px) { .box { padding: 16px !important } }</style></head>"
        '<body><div class="box">Hello</div></body></html>'
    )
    body = rendered(tmp_path, "en", template="styled.html.j2").body
    assert '<div class="box" style="padding: 32px;color: #222;">Hello</div>' in body
    assert "@media (max-width: 620px) { .box { padding: 16px !important } }" in body
    assert ".box { padding: 32px" not in body  # the inlined rule left the head


def test_inlining_can_be_turned_off_and_never_fetches_a_linked_stylesheet(tmp_path):
    page = (
        '<html><head><link rel="stylesheet" href="http://127.0.0.1:9/x.css"><style>p { color: red }</style></head>'
        "<body><p>Hi</p></body></html>"
    )
    (tmp_path / "linked.html.j2").write_text(page)
    # Port 9 answers nothing: a fetch would fail the render; the link is dropped instead.
    assert '<p style="color: red;">Hi</p>' in rendered(tmp_path, "en", template="linked.html.j2").body
    assert rendered(tmp_path, "en", template="linked.html.j2", settings=RenderSettings(inline_css=False)).body == page


MJML = """<mjml lang="{{ locale }}">
  <mj-head><mj-preview>{{ preheader }}</mj-preview></mj-head>
  <mj-body>
    <mj-section><mj-column>
      <mj-text font-size="20px">Hello {{ customer.first_name }} &amp; welcome</mj-text>
      <mj-text>Your code is <b>{{ code }}</b>, until {{ until | date("long") }}.</mj-text>
      <mj-button href="https://shop.example/start">Start shopping</mj-button>
    </mj-column></mj-section>
  </mj-body>
</mjml>
"""


def test_an_mjml_template_compiles_to_html_with_a_readable_text_alternative(tmp_path):
    (tmp_path / "welcome.mjml.j2").write_text(MJML)
    from datetime import datetime, timezone

    env = make_environment(tmp_path)
    customer = {"first_name": "<Mei>", "locale": "en-GB", "timezone": "Europe/London"}
    context = {"customer": customer, "code": "WELCOME", "until": datetime(2026, 7, 1, tzinfo=timezone.utc), **LINKS}
    email = render_actions(
        env, campaign("welcome.mjml.j2", "Hi", preheader="Your code inside"), context, default_sender="s@x"
    ).emails[0]
    assert email.is_html and email.body.startswith("<!") and 'lang="en-GB"' in email.body
    assert "&lt;Mei&gt;" in email.body and "<Mei>" not in email.body  # customer data escaped in MJML too
    assert "<style" in email.body and "@media" in email.body  # MJML's responsive columns kept
    assert "googleapis" not in email.body  # no web font fetched unless the template asks
    message = build_email(
        delivery_id=1,
        sender="s@x.example",
        to="c@x",
        subject=email.subject,
        body=email.body,
        is_html=True,
        unsubscribe_url=LINKS["unsubscribe_url"],
        campaign="hello",
    )
    assert message.text.strip().split("\n\n") == [
        "Hello <Mei> & welcome",
        "Your code is WELCOME, until 1 July 2026.",
        "Start shopping (https://shop.example/start)",
        "Unsubscribe: https://shop.example/u/T",
    ]


def test_mjml_that_does_not_compile_is_a_render_error_naming_the_template(tmp_path):
    (tmp_path / "broken.mjml.j2").write_text("<mjml><mj-body><mj-section>")
    with pytest.raises(RenderError, match=r"broken.mjml.j2: MJML does not compile"):
        rendered(tmp_path, "en", template="broken.mjml.j2")
    (tmp_path / "include.mjml.j2").write_text('<mjml><mj-body><mj-include path="/etc/passwd" /></mj-body></mjml>')
    with pytest.raises(RenderError, match="MJML does not compile"):  # no file is ever read
        rendered(tmp_path, "en", template="include.mjml.j2")
