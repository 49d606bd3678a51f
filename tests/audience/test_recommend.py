"""Recommendations against a shop small enough to rank by hand, on SQLite and PostgreSQL: each
strategy, ties (count, then product id), out-of-stock products and what was bought within
`exclude_bought` left out, and one query per strategy per batch whatever its size."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from engine.core.errors import RenderError
from engine.ingest.products import import_products
from engine.messages.shop import Shop
from engine.messages.templates import make_environment, render_string
from tests.support.store import seed

AT = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
PEOPLE = ["ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "new"]
CATALOGUE = [
    {"id": "s1", "category": "shoes"},
    {"id": "s2", "category": "shoes"},
    {"id": "s3", "category": "shoes", "in_stock": False},  # the best seller, sold out
    {"id": "s4", "category": "shoes"},
    {"id": "s5", "category": "shoes"},
    {"id": "b1", "category": "bags"},
    {"id": "b2", "category": "bags"},
    {"id": "k1", "category": "knitwear"},
    {"id": "x9"},  # no category
    {"id": "1001", "category": "bags"},
]
# (customer, product, days ago) — bought within 30 days: s2 ×4; s1 ×3 and s4 ×3 (a tie, s1 first
# by id); s3 ×5 but out of stock; b1 ×2, b2 ×1; k1 ×1.
PURCHASES = [
    ("ann", "s4", 2), ("ann", "b1", 40), ("ann", "s5", 400),  # s5: before exclude_bought's 365d
    ("bob", "s2", 3), ("bob", "s1", 4), ("bob", "s5", 40), ("bob", "s5", 41),  # co-purchases count buyers
    ("cat", "s2", 3), ("cat", "s4", 5), ("cat", "s1", 40), ("cat", "s3", 40),
    ("dan", "s2", 3), ("dan", "b1", 6),
    ("eve", "s2", 3), ("eve", "b1", 6), ("eve", "k1", 7),
    ("fay", "s1", 4), ("fay", "s4", 5),
    ("gus", "s1", 4), ("gus", "b2", 6),
]  # fmt: skip
# ann's views (hours ago): b2 and k1 at the same instant (b2 first by id), a sold-out s3, bought
# s4 and b1, an unknown product, a product id a CSV gave as a number, and one after `at`.
VIEWS = [("b2", 1), ("k1", 1), ("s3", 2), ("x9", 3), ("s4", 4), ("b1", 5), ("s2", 6), (1001, 7), ("zz", 8)]
VIEWS += [("b2", 20), ("s1", -1)]


@pytest.fixture
def shop(store, tmp_path):
    rows = "".join(json.dumps(row) + "\n" for row in CATALOGUE)
    (tmp_path / "products.jsonl").write_text(rows)
    import_products(store, tmp_path / "products.jsonl", now=AT)
    seed(store, customers=[{"id": cid} for cid in PEOPLE])
    history = [
        {"customer_id": cid, "type": "purchase", "occurred_at": AT - days * DAY, "properties": {"product_id": pid}}
        for cid, pid, days in PURCHASES
    ]
    history += [  # hal bought the sold-out s3 five times yesterday
        {"customer_id": "hal", "type": "purchase", "occurred_at": AT - DAY - h * HOUR, "properties": {"product_id": p}}
        for h, p in enumerate(["s3"] * 5)
    ]
    history += [
        {"customer_id": "ann", "type": "product_view", "occurred_at": AT - h * HOUR, "properties": {"product_id": pid}}
        for pid, h in VIEWS
    ]
    seed(store, events=history)
    return store


def recommended(store, strategy: str, n: int = 3, exclude_bought=None, ranking: int = 100) -> dict[str, list[str]]:
    with store.engine.connect() as conn:
        batch = Shop(AT, ranking).batch(conn, PEOPLE)
        return {cid: [p["id"] for p in batch.recommend(cid, strategy, n, exclude_bought)] for cid in PEOPLE}


TOP_IN_FAVOURITE = {
    "ann": ["s2", "s1"],  # shoes: s2, s1, s4 — s4 bought 2 days ago
    "bob": ["s4"],
    "cat": [],  # bought every shoe in stock this year
    "dan": ["b2"],  # shoes and bags once each: bags, first by name
    "eve": ["b2"],  # bags, knitwear and shoes once each: bags
    "fay": ["s2"],
    "gus": ["b1"],
    "hal": ["s2", "s1", "s4"],  # bought the sold-out s3 only
    "new": [],  # bought nothing
}
ALSO_BOUGHT = {
    "ann": ["s1", "s2", "s5"],  # last bought s4: s1 (2 buyers), then b1, s2, s5 (1 each); b1 bought
    "bob": ["b1", "k1", "s4"],  # last bought s2: b1 and s1 (2 each), then k1, s4, s5
    "cat": ["b1", "k1", "s5"],
    "dan": ["s1", "k1", "s4"],
    "eve": ["s1", "s4", "s5"],
    "fay": ["s2", "b2", "s5"],  # last bought s1: s2 and s4 (2 each), b2, s5
    "gus": ["s2", "s4", "s5"],
    "hal": ["s1", "s2", "s4"],  # last bought s3: cat bought it, and s1, s2, s4
    "new": [],
}


@pytest.mark.parametrize("ranking", [100, 1])  # 1: every ranking is read again, longer, as it runs out
def test_top_in_favourite_category(shop, ranking):
    assert recommended(shop, "top_in_favourite_category", ranking=ranking) == TOP_IN_FAVOURITE


@pytest.mark.parametrize("ranking", [100, 1])
def test_also_bought(shop, ranking):
    assert recommended(shop, "also_bought", ranking=ranking) == ALSO_BOUGHT


def test_exclude_bought_reaches_as_far_back_as_asked(shop):
    assert recommended(shop, "also_bought", exclude_bought="500d")["ann"] == ["s1", "s2"]  # s5: 400 days ago
    assert recommended(shop, "also_bought", n=1, exclude_bought="1d")["ann"] == ["s1"]
    assert recommended(shop, "top_in_favourite_category", exclude_bought="1d")["ann"] == ["s2", "s1", "s4"]


def test_viewed_not_bought(shop):
    views = recommended(shop, "viewed_not_bought", n=5)
    # b2 and k1 viewed at one instant (b2 by id), x9, s2, then 1001 (a number in the event)
    assert views["ann"] == ["b2", "k1", "x9", "s2", "1001"]
    assert recommended(shop, "viewed_not_bought", n=2)["ann"] == ["b2", "k1"]
    assert all(views[cid] == [] for cid in PEOPLE if cid != "ann")


def statements_of(shop, batches: list[list[str]]) -> list[str]:
    """The SQL run while every strategy is asked for every customer of these batches, in turn, as
    one occurrence's dispatch would."""
    statements: list[str] = []
    with shop.engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", lambda *args: statements.append(args[2]))
        occurrence = Shop(AT)
        for ids in batches:
            batch = occurrence.batch(conn, ids)
            for cid in ids:
                for strategy in ("top_in_favourite_category", "also_bought", "viewed_not_bought"):
                    batch.recommend(cid, strategy, 3, None)
    return statements


def test_a_few_queries_per_batch_whatever_its_size(shop):
    # bought, favourite categories, best sellers, last purchases, their co-purchases, views, and
    # the products those two name: at most 8 statements for one customer or for nine
    assert len(statements_of(shop, [["ann"]])) <= len(statements_of(shop, [PEOPLE])) <= 8
    # A second batch of the occurrence reads no ranking again (its anchors are known already).
    assert len(statements_of(shop, [PEOPLE, PEOPLE])) == len(statements_of(shop, [PEOPLE])) + 4


def test_co_purchases_are_read_at_most_twice_an_occurrence(shop):
    """A pass over every purchase costs the same for one anchor or all: the second batch that needs
    rankings reads every product's, and no later batch reads any."""
    batches = [["ann"], ["bob"], ["fay"], ["hal"], ["gus"]]  # last bought: s4, s2, s1, s3, s1
    reads = [s for s in statements_of(shop, batches) if "owned" in s]
    assert len(reads) == 2


def test_templates_call_recommend_and_look_products_up(shop, tmp_path):
    env = make_environment(tmp_path)
    text = (
        "{% for p in recommend('also_bought', 2) %}{{ p.id }} {% endfor %}|"
        "{{ products['s1'].category }}|{{ products[1001].id }}|{{ 'yes' if products['zz'] else 'no' }}"
    )
    with shop.engine.connect() as conn:
        batch = Shop(AT).batch(conn, ["ann"])
        context = {"recommend": batch.recommender("ann"), "products": batch.products}
        assert render_string(env, text, context) == "s1 s2 |shoes|1001|no"
        for call, reason in (
            ("recommend('best')", "recommend: unknown strategy 'best': use one of top_in_favourite_category"),
            ("recommend('also_bought', 0)", "recommend: n must be a whole number from 1 to 20, got 0"),
            ("recommend('also_bought', exclude_bought='soon')", "recommend: exclude_bought: invalid duration"),
        ):
            with pytest.raises(RenderError) as failed:  # that customer's message fails, nothing crashes
                render_string(env, "{{ " + call + " }}", context)
            assert reason in str(failed.value)
        with pytest.raises(RenderError, match="no product 'zz' in the catalogue"):
            render_string(env, "{{ products['zz'].name }}", context)
