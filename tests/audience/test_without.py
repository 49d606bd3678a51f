"""`without: {type, same, within?}`: "viewed a category they never bought", on both databases, as
the oracle has it, in explain, describe, the schema, templates' `matched` and validate."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner
from pydantic import TypeAdapter

from engine.audience.compiler import EvalContext, store_timezones
from engine.audience.explain import explain_condition
from engine.cli.main import main
from engine.messages.context import build_contexts
from engine.rules.campaign import Campaign
from engine.rules.conditions import Condition
from engine.rules.describe import describe
from tests.audience.test_compiler import ev, ids, people, reference_ids
from tests.support.store import seed

AT = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
NEVER_BOUGHT = {"event": "product_view", "without": {"type": "purchase", "same": ["category"]}}


def shop(store) -> None:
    names = ("browser", "bought", "bought_since", "bought_after_at", "two_views", "no_category", "long_ago", "silent")
    seed(store, customers=people(*names))
    seed(
        store,
        events=[
            ev("browser", "product_view", AT - 5 * HOUR, category="shoes"),
            ev("browser", "purchase", AT - 2 * DAY, category="bags"),  # another category
            ev("bought", "purchase", AT - 2 * DAY, category="shoes"),
            ev("bought", "product_view", AT - 5 * HOUR, category="shoes"),
            ev("bought_since", "product_view", AT - 5 * HOUR, category="shoes"),
            ev("bought_since", "purchase", AT - HOUR, category="shoes"),  # after the view: still "ever"
            ev("bought_after_at", "product_view", AT - 5 * HOUR, category="shoes"),
            ev("bought_after_at", "purchase", AT + HOUR, category="shoes"),  # not yet at `at`
            ev("two_views", "purchase", AT - 2 * DAY, category="shoes"),
            ev("two_views", "product_view", AT - 9 * HOUR, category="bags"),  # never bought bags
            ev("two_views", "product_view", AT - 5 * HOUR, category="shoes"),  # the more recent view
            ev("no_category", "product_view", AT - 5 * HOUR),  # a missing value matches nothing
            ev("no_category", "purchase", AT - 2 * DAY),
            ev("long_ago", "purchase", AT - 60 * DAY, category="shoes"),
            ev("long_ago", "product_view", AT - 5 * HOUR, category="shoes"),
        ],
    )


def test_viewed_a_category_they_never_bought(store):
    shop(store)
    expected = ["bought_after_at", "browser", "no_category", "two_views"]
    assert ids(store, NEVER_BOUGHT) == expected
    assert reference_ids(store, NEVER_BOUGHT) == expected  # the differential test's oracle agrees
    recent = {**NEVER_BOUGHT, "without": {"type": "purchase", "same": ["category"], "within": "30d"}}
    assert ids(store, recent) == ["bought_after_at", "browser", "long_ago", "no_category", "two_views"]
    negated = {"not": NEVER_BOUGHT}
    assert ids(store, negated) == ["bought", "bought_since", "long_ago", "silent"]
    # No `same`: no purchase at all.
    assert ids(store, {"event": "product_view", "without": {"type": "purchase"}}) == ["bought_after_at"]


def test_an_event_is_not_its_own_other(store):
    """`purchase without purchase of the same category`: bought from a category only once."""
    seed(store, customers=people("once", "twice"))
    seed(
        store,
        events=[
            ev("once", "purchase", AT - DAY, category="shoes"),
            ev("twice", "purchase", AT - 2 * DAY, category="bags"),
            ev("twice", "purchase", AT - DAY, category="bags"),
        ],
    )
    rule = {"event": "purchase", "without": {"type": "purchase", "same": ["category"]}}
    assert ids(store, rule) == ["once"] == reference_ids(store, rule)


def test_aggregates_count_only_the_events_without_lets_through(store):
    shop(store)
    rule = {**NEVER_BOUGHT, "count": {"gte": 2}}
    assert ids(store, rule) == []
    once = ["bought_after_at", "browser", "no_category", "two_views"]
    assert ids(store, {**NEVER_BOUGHT, "count": {"eq": 1}}) == once


def explained(store, rule: dict, customer: str):
    cond = TypeAdapter(Condition).validate_python(rule)
    with store.engine.connect() as conn:
        ctx = EvalContext(at=AT, timezone="UTC", dialect=store.dialect, timezones=store_timezones(conn))
        return explain_condition(conn, cond, ctx, customer)


def test_explain_says_what_was_never_bought_or_what_was(store):
    shop(store)
    browser = explained(store, NEVER_BOUGHT, "browser")
    assert browser.passed and browser.value["without"] == "no purchase of category shoes ever"
    assert browser.label == "event product_view count gte 1 without purchase of the same category"
    bought = explained(store, NEVER_BOUGHT, "bought")
    assert not bought.passed
    assert bought.value["without"] == "purchase of category shoes at 2026-05-30T09:00:00+00:00"
    assert explained(store, NEVER_BOUGHT, "two_views").value["without"] == "no purchase of category bags ever"
    assert explained(store, NEVER_BOUGHT, "silent").value["without"] is None
    recent = {**NEVER_BOUGHT, "without": {"type": "purchase", "same": ["category"], "within": "30d"}}
    assert explained(store, recent, "long_ago").value["without"] == "no purchase of category shoes within 30d"


def test_describe_and_the_schema_know_without():
    cond = TypeAdapter(Condition).validate_python(
        {"event": "product_view", "without": {"type": "purchase", "same": ["category", "size"], "within": "2w"}}
    )
    assert describe(cond) == "event product_view count gte 1 without purchase of the same category, size within 2w"
    schema = json.loads(CliRunner().invoke(main, ["schema"]).stdout)
    without = schema["$defs"]["Without"]
    assert set(without["properties"]) == {"type", "same", "within"} and without["required"] == ["type"]
    assert "without" in schema["$defs"]["EventCondition"]["properties"]


def test_templates_name_the_event_without_let_through(store):
    """`matched.product_view` is the bags the customer looked at, not the more recent shoes they own."""
    shop(store)
    campaign = Campaign.model_validate(
        {
            "campaign": "never-bought",
            "schedule": "0 9 * * *",
            "audience": NEVER_BOUGHT,
            "actions": [{"task": {"queue": "q", "title": "{{ matched.product_view.properties.category }}"}}],
        }
    )
    with store.engine.connect() as conn:
        contexts = build_contexts(conn, ["two_views", "browser"], AT, campaign)
    assert contexts["two_views"]["matched"]["product_view"]["properties"] == {"category": "bags"}
    assert contexts["browser"]["matched"]["product_view"]["properties"] == {"category": "shoes"}


NEVER_BOUGHT_RULE = """campaign: never-bought
schedule: "0 9 * * *"
audience:
  event: product_view
  without: {type: purchse, same: [category]}
actions:
  - task: {queue: care, title: "Call {{ customer.id }}"}
"""


def test_validate_warns_about_an_event_type_without_names_that_the_store_never_saw(sqlite_store, workspace_dir):
    shop(sqlite_store)
    config = workspace_dir / "config.yaml"
    config.write_text(config.read_text().replace("sqlite:///nudge.db", sqlite_store.url))
    for rule in (workspace_dir / "rules").glob("*.yaml"):
        if rule.name != "segments.yaml":
            rule.unlink()
    rule = workspace_dir / "rules" / "never-bought.yaml"
    rule.write_text(NEVER_BOUGHT_RULE)
    result = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "validate"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"{rule}:5:19: warning: event type 'purchse' does not occur in the store (did you mean purchase?)"
    ]
