"""Templates: sandboxed, strict about undefined names, HTML-escaped customer data."""

from __future__ import annotations

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
