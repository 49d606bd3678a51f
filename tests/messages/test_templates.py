"""Templates: sandboxed, strict about undefined names, HTML-escaped customer data."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from engine.messages.templates import LastEvents, RenderError, make_environment, render_file, render_string


@pytest.fixture
def env(tmp_path):
    (tmp_path / "hello.html.j2").write_text("<p>Hi {{ customer.first_name }}</p>\n")
    return make_environment(tmp_path)


def test_customer_data_is_escaped_in_html(env):
    html = render_file(env, "hello.html.j2", {"customer": {"first_name": "<script>x</script>"}})
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_undefined_variables_are_errors_not_blanks(env):
    with pytest.raises(RenderError, match="nickname"):
        render_string(env, "Hi {{ customer.nickname }}", {"customer": {"first_name": "Ann"}})


def test_the_sandbox_refuses_python_internals(env):
    with pytest.raises(RenderError):
        render_string(env, "{{ customer.__class__.__mro__ }}", {"customer": {}})
    with pytest.raises(RenderError):
        render_string(env, "{{ ''.__class__.__subclasses__() }}", {})


def test_last_event_of_a_type_the_customer_never_had_is_none(env):
    last = LastEvents(purchase={"properties": {"amount": 5}})
    text = "{% if last.product_view %}viewed{% else %}never{% endif %} {{ last.purchase.properties.amount }}"
    assert render_string(env, text, {"last": last}) == "never 5"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{{ 'x' * 10**10 }}", "a value repeated to more than 100,000 items"),
        ("{{ [1] * 10**9 }}", "a value repeated to more than 100,000 items"),
        ("{{ 2 ** 100000 }}", "an exponent above 1000"),
        ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
        ("{{ 'a' + 1 }}", 'TypeError: can only concatenate str (not "int") to str'),
    ],
)
def test_the_sandbox_bounds_what_a_template_can_build(tmp_path, text, reason):
    env = make_environment(tmp_path)
    with pytest.raises(RenderError) as caught:
        render_string(env, text, {})
    assert str(caught.value) == reason


def test_a_template_file_that_explodes_names_itself_and_its_line(tmp_path):
    (tmp_path / "big.html.j2").write_text("<p>fine</p>\n<p>{{ 'x' * 10**10 }}</p>\n")
    with pytest.raises(RenderError) as caught:
        render_file(make_environment(tmp_path), "big.html.j2", {})
    assert str(caught.value) == "big.html.j2:2: a value repeated to more than 100,000 items"


def test_a_template_that_links_outside_templates_is_refused_even_through_include(tmp_path):
    secret = tmp_path / "config.env"
    secret.write_text("NUDGE_SECRET=do-not-show\n")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "leak.html.j2").symlink_to(secret)
    (templates / "outer.html.j2").write_text("<p>{% include 'leak.html.j2' %}</p>\n")
    (templates / "real.html.j2").write_text("<p>inside</p>\n")
    (templates / "alias.html.j2").symlink_to(templates / "real.html.j2")  # a link that stays inside is fine
    env = make_environment(templates)
    for name in ("leak.html.j2", "outer.html.j2"):
        with pytest.raises(RenderError) as caught:
            render_file(env, name, {})
        assert "leads outside templates/" in str(caught.value) and "do-not-show" not in str(caught.value)
    assert render_file(env, "alias.html.j2", {}) == "<p>inside</p>\n"


def test_a_link_to_proc_environ_fails_validate_and_preview_never_shows_the_secrets(workspace_dir, tmp_path):
    """Issue 19.9, with real processes: /proc/self/environ is the environment of the process that reads it."""
    command = [sys.executable, "-m", "engine", "--workspace", str(workspace_dir)]
    env = {**os.environ, "NUDGE_SECRET": "s3cret-signing-key", "SENDGRID_API_KEY": "SG.api-key-value"}
    at = "2026-06-01T09:00:00+00:00"
    demo = subprocess.run([*command, "demo", "--customers", "60", "--at", at], env=env, capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr
    template = workspace_dir / "templates" / "lapsed_buyers.html.j2"
    template.unlink()
    template.symlink_to("/proc/self/environ")

    validate = subprocess.run([*command, "validate"], env=env, capture_output=True, text=True)
    assert validate.returncode == 2 and "Traceback" not in validate.stderr
    assert re.search(
        r"rules/lapsed-buyers\.yaml:\d+:\d+: error: template 'lapsed_buyers\.html\.j2' leads outside templates/",
        validate.stderr,
    ), validate.stderr
    page = tmp_path / "preview.html"
    preview = subprocess.run(
        [*command, "preview", "--at", at, "-o", str(page)], env=env, capture_output=True, text=True
    )
    assert preview.returncode == 2 and "Traceback" not in preview.stderr
    shown = preview.stdout + preview.stderr + (page.read_text(errors="replace") if page.exists() else "")
    assert "s3cret-signing-key" not in shown and "SG.api-key-value" not in shown


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ " + "(" * 500 + "1" + ")" * 500 + " }}", "nested more than 30 levels deep"),
        ("{% if 1 %}" * 500 + "x" + "{% endif %}" * 500, "nested more than 30 levels deep"),
        ("{{ " + "[" * 200 + "]" * 200 + " }}", "nested more than 30 levels deep"),
        ("{% for i in [1] %}" * 17 + "x" + "{% endfor %}" * 17, "nested more than 16 loops deep"),
    ],
)
def test_nesting_past_the_bound_is_a_syntax_error_not_a_recursion_error(tmp_path, text, message):
    env = make_environment(tmp_path)
    with pytest.raises(RenderError) as refused:
        render_string(env, text, {})
    assert message in str(refused.value)


def test_nesting_up_to_the_bound_renders(tmp_path):
    env = make_environment(tmp_path)
    assert render_string(env, "{{ " + "(" * 30 + "1" + ")" * 30 + " }}", {}) == "1"
    loops = "{% set n = 1 %}" + "{% for i in [1] %}" * 16 + "{{ n }}" + "{% endfor %}" * 16
    assert render_string(env, loops, {}) == "1"
