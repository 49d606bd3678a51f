"""`matched.NAME`: the event the rule matched, not merely the latest of its type."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.core.errors import UserInputError
from engine.reports.dryrun import dry_run
from tests.support.helpers import write_workspace
from tests.support.store import seed

AT = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
SHOES = {
    "campaign": "big-spenders-shoes",
    "schedule": "0 10 * * 1",
    "audience": {
        "all": [
            {"event": "product_view", "within": "7d", "where": {"category": "shoes"}, "as": "shoes"},
            {"not": {"event": "purchase", "within": "7d"}},
        ]
    },
    "actions": [
        {
            "email": {
                "template": "shoes.html.j2",
                "subject": "{{ matched.shoes.properties.product_name }}, still yours to take",
            }
        }
    ],
}
TEMPLATE = (
    "<p>Still thinking about {{ matched.shoes.properties.product_name }}?</p>"
    "<p>(Last thing you looked at: {{ last.product_view.properties.product_name }})</p>\n"
)


def test_a_template_names_the_product_the_rule_matched(store, tmp_path):
    seed(store, customers=[{"id": "c1", "email": "c1@example.com", "email_opt_in": True}])
    seed(
        store,
        events=[
            {
                "customer_id": "c1",
                "type": "product_view",
                "occurred_at": AT - timedelta(days=2),
                "properties": {"category": "shoes", "product_name": "Leather Boots"},
            },
            {
                "customer_id": "c1",
                "type": "product_view",
                "occurred_at": AT - timedelta(days=1),
                "properties": {"category": "bags", "product_name": "Weekender Bag"},
            },
            {
                "customer_id": "c1",
                "type": "product_view",
                "occurred_at": AT + timedelta(hours=1),
                "properties": {"category": "shoes", "product_name": "Future Sandals"},
            },
        ],
    )
    ws = write_workspace(tmp_path, [SHOES], templates={"shoes.html.j2": TEMPLATE})
    with store.engine.connect() as conn:
        result = dry_run(conn, ws, ws.select(), AT, render=1)
    sample = result.samples["big-spenders-shoes"][0]
    assert sample.error is None
    assert sample.parts["subject"] == "Leather Boots, still yours to take"
    assert "Still thinking about Leather Boots?" in sample.parts["body"]
    assert "Last thing you looked at: Weekender Bag" in sample.parts["body"]  # `last` keeps its meaning


def validate_with(tmp_path, rule: dict, template: str):
    with pytest.raises(UserInputError):  # the helper loads what it wrote, and these files do not validate
        write_workspace(tmp_path, [rule], templates={"shoes.html.j2": template})
    return CliRunner().invoke(main, ["--workspace", str(tmp_path), "validate"])


def test_a_misspelt_matched_name_is_an_error_at_validate(tmp_path):
    result = validate_with(tmp_path, SHOES, TEMPLATE.replace("matched.shoes", "matched.shoe", 1))
    assert result.exit_code == 2
    assert "undefined template variable 'matched.shoe': this campaign's matched events are shoes" in result.stderr


def test_two_leaves_of_one_type_need_as_before_a_template_reads_them(tmp_path):
    rule = {
        **SHOES,
        "audience": {
            "all": [
                {"event": "product_view", "within": "7d", "where": {"category": "shoes"}},
                {"event": "product_view", "within": "30d", "where": {"category": "bags"}},
            ]
        },
        "actions": [{"email": {"template": "shoes.html.j2", "subject": "Hi"}}],
    }
    result = validate_with(tmp_path, rule, "<p>{{ matched.product_view.properties.product_name }}</p>\n")
    assert result.exit_code == 2
    assert "'matched.product_view' is ambiguous: two event leaves of type 'product_view'" in result.stderr
