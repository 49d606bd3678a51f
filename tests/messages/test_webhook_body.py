"""Webhook bodies: rendered JSON checked where it breaks, values escaped by tojson, and the headers
that sign the exact bytes."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, datetime, timezone

import pytest

from engine.core.errors import RenderError, UserInputError
from engine.messages.templates import make_environment
from engine.messages.webhook import (
    WEBHOOK_SECRET_VARIABLE,
    render_body,
    signed_headers,
    webhook_secret,
    webhook_url,
)

VIP = """{
  "customer": {{ customer.id | tojson }},
  "name": {{ customer.first_name | tojson }},
  "note": {{ customer.attributes.note | tojson }},
  "spent": {{ customer.attributes.total_spent | tojson }}
}
"""


def customer(first_name: str = "Ann", note: str = "likes shoes", spent: float = 120.5) -> dict:
    return {"customer": {"id": "c1", "first_name": first_name, "attributes": {"note": note, "total_spent": spent}}}


@pytest.fixture
def env(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "vip_followup.json.j2").write_text(VIP)
    # A comma forgotten after the second member: JSON stops at line 3, column 5.
    (templates / "broken.json.j2").write_text('{\n  "a": {{ customer.id | tojson }}\n    "b": 1\n}\n')
    (templates / "quoted.json.j2").write_text('{"name": "{{ customer.first_name }}"}')
    (templates / "undefined.json.j2").write_text('{\n  "x": {{ customer.nickname | tojson }}\n}')
    return make_environment(templates)


def test_a_valid_body_is_returned_exactly_as_rendered(env):
    body = render_body(env, "vip_followup.json.j2", customer())
    assert body == VIP.replace("{{ customer.id | tojson }}", '"c1"').replace(
        "{{ customer.first_name | tojson }}", '"Ann"'
    ).replace("{{ customer.attributes.note | tojson }}", '"likes shoes"').replace(
        "{{ customer.attributes.total_spent | tojson }}", "120.5"
    )  # layout, spacing and key order kept: the signature covers these bytes


@pytest.mark.parametrize(
    "hostile",
    ['Li "Lei"', "two\nlines\ttab", "李雷 <b>&amp;</b> 'x' \\ end", "回T退订 🎉", "</script>"],
)
def test_tojson_keeps_any_text_inside_its_string(env, hostile):
    body = render_body(env, "vip_followup.json.j2", customer(first_name=hostile, note=hostile))
    parsed = json.loads(body)
    assert parsed["name"] == hostile and parsed["note"] == hostile and parsed["spent"] == 120.5


def test_a_body_that_is_not_json_names_the_template_and_the_place(env):
    with pytest.raises(RenderError) as caught:
        render_body(env, "broken.json.j2", customer())
    assert str(caught.value) == "broken.json.j2: rendered body is not JSON: Expecting ',' delimiter at line 3 column 5"


def test_hand_made_quotes_break_on_a_name_with_a_quote(env):
    assert json.loads(render_body(env, "quoted.json.j2", customer(first_name="Ann"))) == {"name": "Ann"}
    with pytest.raises(RenderError, match=r"quoted.json.j2: rendered body is not JSON: .* line 1 column 15"):
        render_body(env, "quoted.json.j2", customer(first_name='Li "Lei"'))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_number_that_is_not_finite_is_not_json(env, value):
    with pytest.raises(RenderError, match=r"vip_followup.json.j2: rendered body is not JSON: (NaN|Infinity)"):
        render_body(env, "vip_followup.json.j2", customer(spent=value))


def test_an_undefined_name_through_tojson_names_the_name_and_line(env):
    with pytest.raises(RenderError) as caught:
        render_body(env, "undefined.json.j2", customer())
    assert str(caught.value) == "undefined.json.j2:2: 'dict object' has no attribute 'nickname'"


def test_tojson_writes_times_as_iso_8601(tmp_path):
    (tmp_path / "when.json.j2").write_text('{"at": {{ at | tojson }}, "born": {{ born | tojson }}}')
    context = {"at": datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc), "born": date(1990, 2, 3)}
    body = render_body(make_environment(tmp_path), "when.json.j2", context)
    assert json.loads(body) == {"at": "2026-06-01T12:00:00+00:00", "born": "1990-02-03"}


def test_signed_headers_sign_the_exact_utf8_bytes_of_the_body():
    body = '{"name": "李雷", "n": 1}'
    headers = signed_headers(b"s3cret-for-tests", 42, body)
    expected = hmac.new(b"s3cret-for-tests", body.encode("utf-8"), hashlib.sha256).hexdigest()
    assert headers == {
        "Content-Type": "application/json",
        "Idempotency-Key": "42",
        "X-Nudge-Signature": f"sha256={expected}",
        "X-Nudge-Delivery": "42",
        "User-Agent": "nudge",
    }
    other = signed_headers(b"s3cret-for-tests", 42, body.replace("1", "2"))
    assert other["X-Nudge-Signature"] != headers["X-Nudge-Signature"]


@pytest.mark.parametrize("environ", [{}, {WEBHOOK_SECRET_VARIABLE: ""}, {WEBHOOK_SECRET_VARIABLE: "  "}])
def test_a_missing_webhook_secret_is_a_problem_naming_the_variable(environ):
    with pytest.raises(UserInputError) as caught:
        webhook_secret(environ)
    assert str(caught.value).startswith("NUDGE_WEBHOOK_SECRET: error: must be set in the environment")
    assert webhook_secret({WEBHOOK_SECRET_VARIABLE: "abc"}) == b"abc"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "must be set in the environment to the URL this webhook action posts to"),
        ("crm.example.com/hook?key=SECRETKEY", "is not an http:// or https:// URL with a host"),
        ("ftp://crm.example.com/hook?key=SECRETKEY", "is not an http:// or https:// URL with a host"),
        ("https://crm.example.com:99999/hook?key=SECRETKEY", "is not an http:// or https:// URL with a host"),
    ],
)
def test_a_webhook_url_must_be_set_and_http_and_is_never_quoted(value, message):
    environ = {} if value is None else {"CRM_WEBHOOK_URL": value}
    with pytest.raises(UserInputError) as caught:
        webhook_url(environ, "CRM_WEBHOOK_URL")
    assert str(caught.value) == f"CRM_WEBHOOK_URL: error: {message}"
    url = "https://crm.example.com/hook?key=SECRETKEY"
    assert webhook_url({"CRM_WEBHOOK_URL": url}, "CRM_WEBHOOK_URL") == url
