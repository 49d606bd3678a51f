"""Rule mistakes that once meant something else or hid each other: each is a located error."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from engine.cli.main import main


def validate(workspace_dir):
    return CliRunner().invoke(main, ["--workspace", str(workspace_dir), "validate"])


def write_rule(workspace_dir, text: str):
    rule = workspace_dir / "rules" / "probe.yaml"
    rule.write_text(text)
    return rule


def test_shape_errors_do_not_hide_a_missing_template(workspace_dir):
    rule = write_rule(
        workspace_dir,
        """campaign: probe
schedule: "61 * * * *"
cooldown: 3x
audience:
  attribute: country
  inn: [US]
actions:
  - email:
      subject: Hi
      template: nowhere.html.j2
""",
    )
    result = validate(workspace_dir)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(rule))]
    assert any(":2:" in line and "cron" in line for line in lines)
    assert any(":3:" in line and "duration" in line for line in lines)
    assert any(":6:" in line and "inn" in line for line in lines)
    assert f"{rule}:10:17: error: template 'nowhere.html.j2' not found" in result.stderr


def test_a_list_where_one_value_is_expected_gets_one_readable_line(workspace_dir):
    rule = write_rule(
        workspace_dir,
        'campaign: probe\nschedule: "0 9 * * *"\naudience:\n  attribute: country\n  eq: [CN, US]\n'
        "actions:\n  - task: {queue: q, title: t}\n",
    )
    result = validate(workspace_dir)
    assert result.exit_code == 2
    mine = [line for line in result.stderr.splitlines() if line.startswith(str(rule))]
    assert len(mine) == 1
    assert mine[0].endswith("eq takes one value, got a list (to match any of several values use in: [...])")


@pytest.mark.parametrize(
    ("test", "where", "message"),
    [
        ("gte: champions", "5:8", "gte orders numbers, and rfm.segment is a category (it would compare"),
        ("in: [champion]", "5:7", "rfm.segment has no value 'champion': its values are champions, potential_loyalists"),
    ],
)
def test_categorical_metrics_take_only_their_own_values(workspace_dir, test, where, message):
    rule = write_rule(
        workspace_dir,
        f'campaign: probe\nschedule: "0 9 * * *"\naudience:\n  metric: rfm.segment\n  {test}\n'
        "actions:\n  - task: {queue: q, title: t}\n",
    )
    result = validate(workspace_dir)
    assert result.exit_code == 2
    assert f"{rule}:{where}: error: {message}" in result.stderr


def test_lifecycle_and_value_tier_values_are_checked(workspace_dir):
    rule = write_rule(
        workspace_dir,
        'campaign: probe\nschedule: "0 9 * * *"\naudience:\n  all:\n    - metric: lifecycle\n      in: [at-risk]\n'
        "    - metric: value_tier\n      in: [a]\nactions:\n  - task: {queue: q, title: t}\n",
    )
    result = validate(workspace_dir)
    assert f"{rule}:6:11: error: lifecycle has no value 'at-risk'" in result.stderr
    assert f"{rule}:8:11: error: value_tier has no value 'a': its values are A, B, C" in result.stderr


@pytest.mark.parametrize(
    "template",
    ["{{ " + "(" * 500 + "1" + ")" * 500 + " }}", "{% if 1 %}" * 500 + "x" + "{% endif %}" * 500],
)
def test_a_template_nested_too_deep_is_a_located_error_not_a_traceback(workspace_dir, template):
    (workspace_dir / "templates" / "deep.html.j2").write_text("<p>\n" + template + "\n</p>\n")
    write_rule(
        workspace_dir,
        'campaign: probe\nschedule: "0 9 * * *"\naudience: {attribute: country, eq: US}\n'
        "actions: [{email: {template: deep.html.j2, subject: Hi}}]\n",
    )
    result = validate(workspace_dir)
    assert result.exit_code == 2 and "Traceback" not in result.output
    deep = workspace_dir / "templates" / "deep.html.j2"
    assert f"{deep}:2: error: template syntax error: nested more than 30 levels deep" in result.stderr
