"""Hypothesis writes a shop (a catalogue, purchases and views around `at`); every customer's
recommendations from the SQL must be exactly what the naive per-customer reference computes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.durations import parse_duration
from engine.ingest.products import load_products
from engine.messages.shop import Shop
from engine.store.tables import customers, events, products
from tests.support.reference_shop import EXCLUDE_BOUGHT, recommend
from tests.support.store import seed

AT = datetime(2026, 3, 1, 0, 30, tzinfo=timezone.utc)
# "10" sorts before "9" as text: ties by id are by code point, never by number.
IDS = ["p1", "p2", "p3", "p4", "10", "9"]
# Around every edge: the 30 days of best sellers, the 365 of exclude_bought, `at` itself.
OFFSETS = [timedelta(days=d) for d in (-400, -40, -29, -2)] + [timedelta(hours=h) for h in (-1, 0, 1)]
STRATEGIES = ["top_in_favourite_category", "also_bought", "viewed_not_bought"]
# What an event may name: a product by id, the same as a number, one the catalogue lacks, nothing.
NAMES = st.one_of(st.sampled_from(IDS), st.sampled_from([10, 9]), st.just("zz"), st.just(None), st.just(True))


@st.composite
def shops(draw):
    catalogue = {
        # Mostly two categories and in stock, so that favourites tie and rankings have something to pick.
        pid: {"category": draw(st.sampled_from([None, "a", "a", "b", "b"])), "in_stock": draw(st.integers(0, 3)) > 0}
        for pid in draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=len(IDS), unique=True))
    }
    people = [f"c{i}" for i in range(draw(st.integers(1, 5)))]
    history = []
    for cid in people:
        for _ in range(draw(st.integers(0, 6))):
            name = draw(NAMES)
            history.append(
                {
                    "customer_id": cid,
                    "type": draw(st.sampled_from(["purchase", "purchase", "purchase", "product_view"])),
                    "occurred_at": AT + draw(st.sampled_from(OFFSETS)),
                    "properties": {} if name is None else {"product_id": name},
                }
            )
    return catalogue, people, history


def _load(store, catalogue, people, history) -> list[dict]:
    with store.engine.begin() as conn:
        for table in (events, customers, products):
            conn.execute(sa.delete(table))
    rows = [{"id": pid, **spec} for pid, spec in catalogue.items()]
    load_products(store, enumerate(rows, 1), path="<shop>", untyped=False, now=AT)
    seed(store, customers=[{"id": cid} for cid in people], events=history)
    # The importer keeps one of identical rows; the oracle sees what the store kept, in import order.
    seen, kept = set(), []
    for seq, e in enumerate(history):
        key = (e["customer_id"], e["type"], e["occurred_at"], json.dumps(e["properties"], sort_keys=True))
        if key not in seen:
            seen.add(key)
            kept.append({**e, "seq": seq})
    return kept


def _check(store, shop, n, exclude, ranking, split) -> None:
    catalogue, people, history = shop
    kept = _load(store, catalogue, people, history)
    window = EXCLUDE_BOUGHT if exclude is None else parse_duration(exclude)
    # One batch, or one customer and then the rest, as an occurrence's dispatch batches come: the
    # second batch reads every product's co-purchases at once.
    batches = [people[:1], people[1:]] if split else [people]
    with store.engine.connect() as conn:
        occurrence = Shop(AT, ranking)
        for ids in batches:
            batch = occurrence.batch(conn, ids)
            for strategy in STRATEGIES:
                got = {cid: [p["id"] for p in batch.recommend(cid, strategy, n, exclude)] for cid in ids}
                expected = {cid: recommend(strategy, cid, n, catalogue, kept, AT, window) for cid in ids}
                assert got == expected, strategy


CASES = dict(
    shop=shops(),
    n=st.integers(1, 4),
    exclude=st.sampled_from([None, "1d", "30d", "500d"]),
    ranking=st.sampled_from([1, 100]),
    split=st.booleans(),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**CASES)
def test_sqlite_recommends_what_the_reference_does(sqlite_store, shop, n, exclude, ranking, split):
    _check(sqlite_store, shop, n, exclude, ranking, split)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**CASES)
def test_postgres_recommends_what_the_reference_does(pg_store, shop, n, exclude, ranking, split):
    _check(pg_store, shop, n, exclude, ranking, split)
