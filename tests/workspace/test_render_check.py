"""validate renders every campaign once, so a template that would fail for every customer is
caught before the first send; dry-run exits 1 when its samples do not render."""

from __future__ import annotations

from click.testing import CliRunner

from engine.cli.main import main


def nudge(workspace_dir, *args):
    return CliRunner().invoke(main, ["--workspace", str(workspace_dir), *args])


def test_an_unknown_filter_is_found_at_validate_for_a_synthetic_customer(workspace_dir):
    template = workspace_dir / "templates" / "birthday.html.j2"
    template.write_text(template.read_text().replace('customer.first_name or "friend"', "customer.first_name | upper2"))
    result = nudge(workspace_dir, "validate")
    assert result.exit_code == 2
    assert f"{workspace_dir / 'rules' / 'birthday.yaml'}:12:5: error: does not render for a sample customer (en): " in (
        result.stderr
    )
    assert "birthday.html.j2:5: No filter named 'upper2'." in result.stderr


def test_a_missing_layout_is_found_at_validate(workspace_dir):
    template = workspace_dir / "templates" / "lapsed_buyers.html.j2"
    template.write_text(template.read_text().replace("_layout.html.j2", "_layuot.html.j2"))
    result = nudge(workspace_dir, "validate")
    assert result.exit_code == 2 and "'_layuot.html.j2' not found" in result.stderr


def test_a_misspelt_event_type_in_last_is_found_and_a_real_one_is_not_flagged(workspace_dir):
    template = workspace_dir / "templates" / "birthday.html.j2"
    original = template.read_text()
    template.write_text(original.replace('customer.first_name or "friend"', "last.purchase.properties.amount"))
    assert nudge(workspace_dir, "validate").exit_code == 0
    template.write_text(original.replace('customer.first_name or "friend"', "last.purchse.properties.amount"))
    result = nudge(workspace_dir, "validate")
    assert result.exit_code == 2 and "no event type 'purchse' in the store or the rules (a typo?)" in result.stderr


def test_validate_renders_for_a_customer_of_the_store_when_there_is_one(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "200", "--at", "2026-06-01T09:00:00+00:00").exit_code == 0
    result = nudge(workspace_dir, "validate")
    assert result.exit_code == 0 and "each rendered once" in result.output
    template = workspace_dir / "templates" / "lapsed_buyers.html.j2"
    template.write_text(template.read_text().replace('customer.first_name or "friend"', "1 / 0"))
    result = nudge(workspace_dir, "validate")
    assert result.exit_code == 2 and "does not render for customer demo-" in result.stderr


def test_dry_run_exits_1_when_sample_messages_fail_to_render(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "200", "--at", "2026-06-01T09:00:00+00:00").exit_code == 0
    for name, greeting in (
        ("lapsed_buyers.html.j2", 'customer.first_name or "friend"'),
        ("lapsed_buyers.zh-CN.html.j2", '(customer | full_name) or "亲爱的顾客"'),
    ):
        template = workspace_dir / "templates" / name  # each customer's language: break both
        template.write_text(template.read_text().replace(greeting, "1 / 0"))
    result = nudge(workspace_dir, "dry-run", "lapsed-buyers", "--render", "2", "--at", "2026-06-01T09:00:00+00:00")
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("error: lapsed-buyers: 2 of 2 sample messages failed to render")
    json_run = nudge(
        workspace_dir, "dry-run", "lapsed-buyers", "--render", "2", "--format", "json", "--at", "2026-06-01T09:00:00Z"
    )
    assert json_run.exit_code == 1 and '"render_failures": 2' in json_run.stdout


def test_macros_of_its_own_and_imported_ones_are_not_taken_for_undefined_variables(workspace_dir):
    (workspace_dir / "templates" / "_buttons.html.j2").write_text(
        '{% macro button(url, label) %}<a href="{{ url }}">{{ label }}</a>{% endmacro %}\n'
    )
    (workspace_dir / "templates" / "birthday.html.j2").write_text(
        '{% extends "_layout.html.j2" %}{% import "_buttons.html.j2" as m %}'
        '{% from "_buttons.html.j2" import button as btn %}{% macro own(x) %}<b>{{ x }}</b>{% endmacro %}'
        '{% block content %}{{ own(customer.first_name) }}{{ m.button("https://shop.example", "Shop") }}'
        '{{ btn("https://shop.example", "Go") }}{% endblock %}\n'
    )
    result = nudge(workspace_dir, "validate")
    assert result.exit_code == 0, result.stderr
    # …while a name nothing defines is still an error.
    template = workspace_dir / "templates" / "birthday.html.j2"
    template.write_text(template.read_text().replace("m.button", "n.button"))
    assert "undefined template variable 'n'" in nudge(workspace_dir, "validate").stderr
