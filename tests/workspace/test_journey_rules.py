"""Journey files: each shape mistake is one located error, and a template that reads what its step
cannot have is found at validate, not at send time."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from engine.cli.main import main

HEAD = 'campaign: probe\nschedule: "0 9 * * *"\naudience: {attribute: country, eq: US}\n'
TASK = "[{task: {queue: q, title: t}}]"


def validate(workspace_dir, text: str):
    rule = workspace_dir / "rules" / "probe.yaml"
    rule.write_text(HEAD + text)
    result = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "validate"])
    return result, [line for line in result.stderr.splitlines() if line.startswith(str(rule))]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"actions: {TASK}\nsteps:\n  - {{name: a, actions: {TASK}}}\n", "a journey has steps instead of actions"),
        (f"steps:\n  - {{name: a, actions: {TASK}}}\n  - {{name: b, actions: {TASK}}}\n", "needs wait"),
        (f"steps:\n  - {{name: a, wait: 1d, actions: {TASK}}}\n", "runs when a customer enters; it takes no wait"),
        (
            f"steps:\n  - {{name: a, actions: {TASK}}}\n  - {{name: a, wait: 1d, actions: {TASK}}}\n",
            "step names must be unique",
        ),
        (f"exit_on: {{event: purchase}}\nactions: {TASK}\n", "exit_on belongs to journeys"),
        ("description: nothing to do\n", "a campaign needs actions (or steps, for a journey)"),
        (f"steps:\n  - {{name: Offer, actions: {TASK}}}\n", "should match pattern"),
    ],
)
def test_journey_shape_mistakes_are_located_errors(workspace_dir, text, message):
    result, mine = validate(workspace_dir, text)
    assert result.exit_code == 2
    assert len(mine) == 1 and message in mine[0], mine


def test_received_must_name_a_step_of_a_journey(workspace_dir):
    result, mine = validate(
        workspace_dir,
        "actions:\n  - task:\n      queue: q\n      title: t\n      when: {received: {campaign: churn-winback/ofer}}\n",
    )
    assert result.exit_code == 2
    assert mine == [
        f"{workspace_dir}/rules/probe.yaml:8:35: error: churn-winback has no step 'ofer'; steps: offer, reminder, call"
    ]
    result, mine = validate(
        workspace_dir, "actions:\n  - task: {queue: q, title: t, when: {received: {campaign: churn-winback}}}\n"
    )
    assert mine and mine[0].endswith("churn-winback is a journey: name a step, e.g. churn-winback/offer")


def test_a_later_step_reads_earlier_coupons_but_not_matched_events(workspace_dir):
    (workspace_dir / "templates" / "probe.html.j2").write_text(
        "<p>{{ coupons.back.code }} {{ matched.purchase.properties.amount }}</p>\n"
    )
    result, mine = validate(
        workspace_dir,
        "steps:\n"
        "  - name: offer\n"
        "    actions: [{coupon: {name: back, percent_off: 10, valid_for: 7d}}]\n"
        "  - name: reminder\n"
        "    wait: 2d\n"
        "    actions: [{email: {template: probe.html.j2, subject: 'code {{ coupons.back.code }}'}}]\n",
    )
    assert result.exit_code == 2
    # coupons.back (from the offer) is fine; matched.* is not available after the first step.
    assert len(mine) == 0
    problems = [line for line in result.stderr.splitlines() if "probe.html.j2" in line]
    assert len(problems) == 1 and "matched" in problems[0] and "coupons" not in problems[0], problems
