"""`nudge catalog` and validate's warnings: a typo in a name or a value the store has never seen
is pointed out with the nearest real one, instead of silently emptying the audience."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from engine.audience.catalog import build_catalog
from engine.cli.main import main
from tests.support.store import seed

AT = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def shop(store):
    seed(
        store,
        customers=[
            {
                "id": "c1",
                "email": "c1@example.com",
                "country": "US",
                "first_name": "Ann",
                "attributes": {"tier": "gold"},
            },
            {
                "id": "c2",
                "email": "c2@example.com",
                "country": "CN",
                "first_name": "Bo",
                "attributes": {"tier": "silver"},
            },
        ],
    )
    seed(
        store,
        events=[
            {
                "customer_id": "c1",
                "type": "purchase",
                "occurred_at": AT - timedelta(days=3),
                "properties": {"amount": 120.5, "category": "shoes"},
            },
            {
                "customer_id": "c2",
                "type": "purchase",
                "occurred_at": AT - timedelta(days=1),
                "properties": {"amount": 80, "category": "bags"},
            },
            {"customer_id": "c2", "type": "product_view", "occurred_at": AT, "properties": {"category": "shoes"}},
        ],
    )
    return store


def test_the_catalog_lists_types_properties_values_and_fields_but_no_personal_values(shop):
    with shop.engine.connect() as conn:
        data = build_catalog(conn).as_json()
    purchase = next(t for t in data["event_types"] if t["type"] == "purchase")
    assert purchase["count"] == 2 and purchase["last"] == "2026-05-31T09:00:00+00:00"
    assert purchase["properties"]["amount"]["types"] == {"number": 2}
    assert {v["value"] for v in purchase["properties"]["category"]["top_values"]} == {"shoes", "bags"}
    assert data["customer_fields"]["country"]["fill_rate"] == 1.0
    assert data["customer_fields"]["first_name"] == {"fill_rate": 1.0, "types": {}, "top_values": [], "distinct": 0}
    assert {v["value"] for v in data["attributes"]["tier"]["top_values"]} == {"gold", "silver"}


RULE = """campaign: probe
schedule: "0 9 * * *"
audience:
  all:
    - event: purchse
    - event: purchase
      where: {category: Shoes, colour: red}
      sum: {of: amout, gte: 10}
    - attribute: attributes.teir
      eq: gold
    - metric: clv.p_alive
      gte: 0.5
actions:
  - task: {queue: care, title: "Call {{ customer.id }}"}
"""


def test_validate_warns_with_the_nearest_known_name_and_strict_fails(shop, workspace_dir):
    config = workspace_dir / "config.yaml"
    config.write_text(config.read_text().replace("sqlite:///nudge.db", shop.url))
    for rule in (workspace_dir / "rules").glob("*.yaml"):
        if rule.name != "segments.yaml":
            rule.unlink()
    rule = workspace_dir / "rules" / "probe.yaml"
    rule.write_text(RULE)
    result = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "validate"])
    assert result.exit_code == 0, result.output
    warnings = [line.split(": warning: ")[1] for line in result.stderr.splitlines()]
    assert warnings == [
        "event type 'purchse' does not occur in the store (did you mean purchase?)",
        "value 'Shoes' never occurs in purchase.category in the store (did you mean shoes?)",
        "property 'colour' never appears on purchase events",
        "property 'amout' never appears on purchase events (did you mean amount?)",
        "no customer in the store has attribute 'teir' (did you mean tier?)",
        "metric clv.p_alive is empty until `nudge metrics refresh` has run (the daemon refreshes it daily): "
        "every customer fails this test now",
    ]
    assert result.stderr.splitlines()[0].startswith(f"{rule}:5:14: warning:")
    strict = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "validate", "--strict"])
    assert strict.exit_code == 2
    catalog = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "catalog", "--format", "json"])
    assert catalog.exit_code == 0 and json.loads(catalog.stdout)["customers"] == 2


TRIGGERED = """campaign: cart
trigger:
  event: add_to_crat
  delay: 1h
  not_followed_by: {type: purchse, same: [cart_id]}
goal: {event: purchace, within: 3d}
audience:
  event: product_view
  not_followed_by: purchas
actions:
  - email:
      template: cart.html.j2
      subject: {default: "Still thinking, {{ customer.first_name }}?", zh-CN: "还在考虑吗,{{ customer.first_name }}?"}
"""
CART_TEMPLATE = """<p>Hello</p>
{% if last.product_view %}<p>{{ last.product_view.properties.category }}</p>{% endif %}
{% if last.purchse %}<p>Thanks for your last order</p>{% endif %}
"""


def test_event_types_named_outside_conditions_and_in_guarded_templates_get_did_you_mean(shop, workspace_dir):
    config = workspace_dir / "config.yaml"
    config.write_text(config.read_text().replace("sqlite:///nudge.db", shop.url))
    for rule in (workspace_dir / "rules").glob("*.yaml"):
        if rule.name != "segments.yaml":
            rule.unlink()
    (workspace_dir / "rules" / "cart.yaml").write_text(TRIGGERED)
    (workspace_dir / "templates" / "cart.html.j2").write_text(CART_TEMPLATE)
    result = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "validate"])
    assert result.exit_code == 0, result.output
    warnings = {
        line.rsplit(": warning: ", 1)[0].split("/")[-1]: line.split(": warning: ")[1]
        for line in result.stderr.splitlines()
    }
    assert warnings == {
        "cart.yaml:3:10": "event type 'add_to_crat' does not occur in the store",
        "cart.yaml:5:27": "event type 'purchse' does not occur in the store (did you mean purchase?)",
        "cart.yaml:6:15": "event type 'purchace' does not occur in the store (did you mean purchase?)",
        "cart.yaml:9:20": "event type 'purchas' does not occur in the store (did you mean purchase?)",
        "cart.html.j2:3": "'last.purchse': event type 'purchse' does not occur in the store (did you mean purchase?)",
    }
    assert result.stdout.startswith("ok: 1 campaigns") and "5 warnings" in result.stdout
    strict = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "validate", "--strict"])
    assert strict.exit_code == 2 and "ok:" not in strict.output
    assert "failed: 5 warnings, and --strict makes warnings errors" in strict.stderr
