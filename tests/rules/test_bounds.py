"""Every bound the store or the clock has is a validation error at the rule's line: durations,
numbers, names that go into columns, property names that go into JSON paths, text the store
cannot keep."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.core import fields
from engine.store import tables

RULE = """campaign: {campaign}
schedule: "0 9 * * *"
audience:
  {audience}
actions:
  - task: {{queue: {queue}, title: Call, due_in: {due_in}}}
"""


def rule(
    audience: str = "attribute: country\n  eq: US", queue: str = "care", due_in: str = "1d", campaign: str = "probe"
) -> str:
    return RULE.format(audience=audience, queue=queue, due_in=due_in, campaign=campaign)


def validate(workspace_dir, text: str) -> tuple[int, list[str]]:
    path = workspace_dir / "rules" / "probe.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "validate"])
    assert "Traceback" not in result.output
    return result.exit_code, [line.removeprefix(f"{path}:") for line in result.stderr.splitlines()]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (rule(due_in="99999999d"), "7:46: error: duration '99999999d' is longer than 100 years (36525d)"),
        (rule(due_in="1" + "0" * 30 + "s"), "7:46: error: duration '1000000000000000000000000000000s' is longer"),
        (rule(audience="event: purchase\n  within: 5219w"), "5:11: error: duration '5219w' is longer than 100"),
        (rule(audience="attribute: signed_up_at\n  older_than: 999999999d"), "5:15: error: duration '999999999d'"),
        (rule(audience="attribute: country\n  gte: 1.0e+400"), "5:8: error: inf is not a finite number"),
        (rule(audience="attribute: country\n  in: [1, .nan]"), "5:11: error: nan is not a finite number"),
        (rule(audience="attribute: country\n  eq: " + "9" * 30), "5:7: error: an integer of 30 digits is beyond ±1e15"),
        (
            rule(audience="event: purchase\n  sum: {of: amount, gte: 10000000000000001}"),
            "5:26: error: 10000000000000001 is beyond ±1e15",
        ),
        (rule(campaign="a" * 120), "1:11: error: campaign id is 120 characters long: at most 100"),
        (rule(queue="q" * 101), "7:19: error: queue: String should have at most 100 characters"),
        (
            rule(audience='event: purchase\n  where: {"a\\"b": 1}'),
            "5:19: error: invalid property name 'a\"b': use letters, digits, _ and -",
        ),
        (rule(audience='event: purchase\n  where: {"a\\0b": 1}'), "5:11: error: contains a NUL character (\\0)"),
        (rule(audience='attribute: country\n  eq: "\\ud800"'), "5:7: error: contains a lone surrogate"),
        (rule(audience="event: purchase\n  latest: {of: 'x y', eq: 1}"), "5:16: error: invalid property name 'x y'"),
    ],
)
def test_a_rule_beyond_a_bound_is_a_located_error(workspace_dir, text, expected):
    code, lines = validate(workspace_dir, text)
    assert code == 2
    assert any(line.startswith(expected) for line in lines), lines


def test_a_coupon_name_and_the_action_count_fit_their_columns(workspace_dir):
    coupon = "  - coupon: {name: " + "c" * 65 + ", percent_off: 10, valid_for: 7d}\n"
    code, lines = validate(workspace_dir, rule() + coupon)
    assert code == 2 and any(line.startswith("8:20: error: name: String should have at most 64") for line in lines), (
        lines
    )
    many = rule() + "".join(f"  - task: {{queue: care, title: T{i}}}\n" for i in range(fields.MAX_ACTIONS))
    code, lines = validate(workspace_dir, many)
    assert code == 2 and any(
        line.startswith("7:3: error: actions: List should have at most 20 items") for line in lines
    ), lines


def test_a_journey_step_whose_ledger_name_would_not_fit_is_refused_at_its_steps(workspace_dir):
    journey = f"""campaign: {"j" * 90}
schedule: "0 9 * * *"
audience: {{attribute: country, eq: US}}
steps:
  - name: first
    actions: [{{task: {{queue: care, title: T}}}}]
  - name: a-rather-long-second-step
    wait: 1d
    actions: [{{task: {{queue: care, title: T}}}}]
"""
    code, lines = validate(workspace_dir, journey)
    assert code == 2
    assert any(line.startswith("5:3: error: step 'a-rather-long-second-step':") for line in lines), lines


def test_names_from_rules_fit_the_columns_they_are_stored_in():
    def length(table, column: str) -> int:
        return table.c[column].type.length

    for table in (tables.deliveries, tables.occurrences, tables.coupons, tables.tasks):
        assert length(table, "campaign") == fields.CAMPAIGN_NAME_MAX
    assert length(tables.coupons, "name") == fields.COUPON_NAME_MAX
    assert length(tables.tasks, "queue") == fields.TASK_QUEUE_MAX
    assert length(tables.deliveries, "actions") == fields.ACTIONS_TEXT_MAX
    every_action = ",".join(str(i) for i in range(fields.MAX_ACTIONS))
    assert len(every_action) <= fields.ACTIONS_TEXT_MAX


def test_a_template_name_longer_than_a_file_name_is_located_not_an_os_error(workspace_dir):
    email = "  - email: {template: " + "t" * 300 + ".html.j2, subject: Hi}\n"
    code, lines = validate(workspace_dir, rule() + email)
    assert code == 2 and lines == ["8:23: error: template name is 308 characters long: at most 255"], lines
    code, lines = validate(workspace_dir, rule(due_in="soon") + email)  # a file that fails validation anyway
    assert code == 2 and all(":" in line and "error: " in line for line in lines), lines
    assert not any("File name too long" in line for line in lines)


@pytest.mark.parametrize("holdout", ["1" + "0" * 400, "1.0e+400", ".nan"])
def test_a_percentage_given_as_an_enormous_number_is_located(workspace_dir, holdout):
    code, lines = validate(workspace_dir, rule() + f"holdout: {holdout}\n")
    assert code == 2 and len(lines) == 1 and lines[0].startswith("8:10: error: expected a percentage like 10%, got "), (
        lines
    )
