"""insert_rows: many rows in one statement on both databases, exactly as given, rows already
there skipped, the inserted ones returned."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from engine.store.many_rows import insert_rows
from engine.store.tables import coupons, deliveries, events
from tests.support.store import seed

AT = datetime(2026, 6, 1, 9, 30, 15, 123456)


def ledger_row(customer: str, **fields) -> dict:
    return {
        "campaign": "promo",
        "customer_id": customer,
        "occurrence": AT,
        "status": "pending",
        "email": None,
        "not_before": None,
        "actions": "0,1",
        "counts_toward_cap": True,
        "variant": None,
        "reason": None,
        "channel": "email",
        "created_at": AT,
        "updated_at": AT,
        **fields,
    }


KEY = ("campaign", "customer_id", "occurrence", "channel")
BACK = (deliveries.c.id, deliveries.c.customer_id, deliveries.c.status)


def test_rows_go_in_as_given_and_those_already_there_are_skipped(store):
    seed(store, customers=[{"id": c} for c in ("a", "b", "c")])
    first = [
        ledger_row("a", email="a@example.com", not_before=datetime(2026, 6, 2, 0, 0, 0, 1)),
        ledger_row("b", status="held_out", counts_toward_cap=False, reason="held out, 'quoted'"),
    ]
    with store.engine.begin() as conn:
        inserted = insert_rows(conn, deliveries, first, unique=KEY, returning=BACK)
    assert sorted((r.customer_id, r.status) for r in inserted) == [("a", "pending"), ("b", "held_out")]
    again = [ledger_row("a", status="sent"), ledger_row("c", variant="B"), ledger_row("a", channel="sms")]
    with store.engine.begin() as conn:
        inserted = insert_rows(conn, deliveries, again, unique=KEY, returning=BACK)
        # The customer's first email row is left alone; their text row and c's are new.
        assert sorted((r.customer_id, r.status) for r in inserted) == [("a", "pending"), ("c", "pending")]
        stored = conn.execute(sa.select(deliveries).order_by(deliveries.c.id)).all()
    assert [(r.customer_id, r.channel, r.status) for r in stored] == [
        ("a", "email", "pending"),
        ("b", "email", "held_out"),
        ("c", "email", "pending"),
        ("a", "sms", "pending"),
    ]
    a, b, c = stored[0], stored[1], stored[2]
    assert a.email == "a@example.com" and a.not_before == datetime(2026, 6, 2, 0, 0, 0, 1) and a.occurrence == AT
    assert b.counts_toward_cap is False and b.reason == "held out, 'quoted'" and b.variant is None
    assert c.variant == "B" and c.not_before is None


def test_without_a_key_every_row_goes_in_and_nothing_comes_back(store):
    seed(store, customers=[{"id": "a"}])
    with store.engine.begin() as conn:
        [delivery] = insert_rows(conn, deliveries, [ledger_row("a")], unique=KEY, returning=BACK)
        codes = [
            {
                "code": f"CODE{i}",
                "delivery_id": delivery.id,
                "name": f"promo{i}",
                "customer_id": "a",
                "campaign": "promo",
                "percent_off": 12.5 if i else None,
                "amount_off": None,
                "created_at": AT,
                "expires_at": AT,
            }
            for i in range(3)
        ]
        assert insert_rows(conn, coupons, codes) == []
        assert insert_rows(conn, coupons, []) == []
        stored = conn.execute(sa.select(coupons.c.code, coupons.c.percent_off).order_by(coupons.c.code)).all()
    assert stored == [("CODE0", None), ("CODE1", 12.5), ("CODE2", 12.5)]


def test_json_columns_go_in_as_given(store):
    seed(store, customers=[{"id": "a"}])
    row = {"event_key": "k1", "customer_id": "a", "type": "purchase", "occurred_at": AT, "properties": {"n": [1, 2]}}
    with store.engine.begin() as conn:
        insert_rows(conn, events, [row, {**row, "event_key": "k2", "properties": {}}], unique=("event_key",))
        insert_rows(conn, events, [{**row, "properties": {"n": 3}}], unique=("event_key",))  # k1 is there
        stored = conn.execute(sa.select(events.c.properties).order_by(events.c.pk)).scalars().all()
    assert stored == [{"n": [1, 2]}, {}]


def test_a_value_too_long_for_its_column_is_refused_never_cut(store):
    seed(store, customers=[{"id": "a"}])
    row = ledger_row("a", exclusive_group="g" * 70)  # the column holds 64
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":  # SQLite keeps any length: the value as given
            insert_rows(conn, deliveries, [row], unique=KEY, returning=BACK)
            assert conn.execute(sa.select(deliveries.c.exclusive_group)).scalar() == "g" * 70
            return
        try:
            insert_rows(conn, deliveries, [row], unique=KEY, returning=BACK)
        except sa.exc.DataError as exc:
            assert "value too long" in str(exc)
        else:
            raise AssertionError("a 70-character value went into a 64-character column")
