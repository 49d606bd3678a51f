"""`received:` — conditions on the ledger, compiled to SQL, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from engine.store.tables import deliveries
from tests.audience.test_compiler import ids
from tests.support.store import NOW, seed

AT = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)


def ledger(store, rows: list[tuple[str, str, timedelta, str]]) -> None:
    """(customer, campaign, how long before AT, status)"""
    with store.engine.begin() as conn:
        for customer, campaign, ago, status in rows:
            conn.execute(
                sa.insert(deliveries).values(
                    campaign=campaign,
                    customer_id=customer,
                    occurrence=(AT - ago).replace(tzinfo=None),
                    status=status,
                    created_at=NOW.replace(tzinfo=None),
                    updated_at=NOW.replace(tzinfo=None),
                )
            )


@pytest.fixture
def history(store):
    seed(store, customers=[{"id": c} for c in ("sent", "twice", "unknown", "failed", "held", "old", "later", "none")])
    ledger(
        store,
        [
            ("sent", "offer", timedelta(days=2), "sent"),
            ("twice", "offer", timedelta(days=2), "sent"),
            ("twice", "offer", timedelta(days=5), "sent"),
            ("unknown", "offer", timedelta(days=1), "unknown"),
            ("failed", "offer", timedelta(days=1), "failed"),
            ("held", "offer", timedelta(days=1), "held_out"),
            ("old", "offer", timedelta(days=30), "sent"),
            ("later", "offer", timedelta(days=-1), "sent"),  # after `at`: does not exist yet
            ("sent", "other", timedelta(days=1), "sent"),
        ],
    )
    seed(
        store,
        events=[
            {"customer_id": "sent", "type": "purchase", "occurred_at": AT - timedelta(days=1), "properties": {}},
            {"customer_id": "twice", "type": "purchase", "occurred_at": AT - timedelta(days=3), "properties": {}},
        ],
    )
    return store


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"received": {"campaign": "offer"}}, ["old", "sent", "twice", "unknown"]),
        ({"received": {"campaign": "offer", "within": "7d"}}, ["sent", "twice", "unknown"]),
        ({"received": {"campaign": "offer", "within": "2d"}}, ["unknown"]),  # window edge: (at-2d, at]
        ({"received": {"campaign": "offer", "before": "7d"}}, ["old"]),
        ({"received": {"campaign": "offer", "between": ["6d", "2d"]}}, ["sent", "twice"]),
        ({"received": {"campaign": "offer", "status": ["failed", "held_out"]}}, ["failed", "held"]),
        ({"received": {"campaign": "offer", "count": {"gte": 2}}}, ["twice"]),
        ({"received": {"campaign": "offer", "within": "7d", "not_followed_by": "purchase"}}, ["twice", "unknown"]),
        ({"not": {"received": {"campaign": "offer", "within": "7d"}}}, ["failed", "held", "later", "none", "old"]),
        ({"received": {"campaign": "offer", "count": {"eq": 0}}}, ["failed", "held", "later", "none"]),
        ({"received": {"campaign": "other"}}, ["sent"]),
    ],
)
def test_received(history, rule, expected):
    assert ids(history, rule) == expected
