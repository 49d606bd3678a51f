"""explain: the value shown for each node is the one its pass/fail was decided on."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pydantic import TypeAdapter

from engine.audience.compiler import EvalContext, store_timezones
from engine.audience.explain import explain_condition
from engine.rules.conditions import Condition
from tests.support.store import seed

AT = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)


def test_latest_of_a_boolean_property_shows_the_value_it_tested(store):
    seed(store, customers=[{"id": "a"}, {"id": "b"}])
    seed(
        store,
        events=[
            {
                "customer_id": "a",
                "type": "survey",
                "occurred_at": AT - timedelta(days=2),
                "properties": {"recommend": False},
            },
            {
                "customer_id": "a",
                "type": "survey",
                "occurred_at": AT - timedelta(days=1),
                "properties": {"recommend": True},
            },
            {
                "customer_id": "b",
                "type": "survey",
                "occurred_at": AT - timedelta(days=1),
                "properties": {"recommend": False},
            },
        ],
    )
    cond = TypeAdapter(Condition).validate_python({"event": "survey", "latest": {"of": "recommend", "eq": True}})
    with store.engine.connect() as conn:
        ctx = EvalContext(at=AT, timezone="UTC", dialect=store.dialect, timezones=store_timezones(conn))
        a, b = (explain_condition(conn, cond, ctx, cid) for cid in ("a", "b"))
    assert (a.passed, bool(a.value["latest"])) == (True, True)
    assert (b.passed, bool(b.value["latest"])) == (False, False)
    assert a.value["latest"] is not None and b.value["latest"] is not None
