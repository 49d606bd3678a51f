"""Recommendations in SQL (SPEC "Products and recommendations"), each query for a set of
customers or products at once, ranked with window functions, the same on SQLite and PostgreSQL.

A strategy is a ranking and a customer's place in it:
- `top_in_favourite_category`: the customer's most bought category (`favourite_categories`) in
  the ranking of products sold in the last 30 days per category (`best_sellers`);
- `also_bought`: the customer's last purchased product (`last_purchased`) in the ranking of
  products bought by the customers who bought it (`co_purchased`);
- `viewed_not_bought`: the customer's own views, most recent first (`recent_views`).
The rankings do not depend on the customer, so the caller computes each once per occurrence;
the per-customer queries run once per batch of customers. Every ranking holds products in stock
only; ties go to the higher count, then the lower product id (by code point). What the customer
bought within `exclude_bought` (`bought`) is left out when the caller picks from a ranking.

An event names a product by its `product_id` property, read as text (a CSV import stores 1001 as
a number; `products.id` is text); any other JSON type names no product."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from engine.core.clock import naive_utc
from engine.core.durations import parse_duration
from engine.store.tables import events, products

STRATEGIES = ("top_in_favourite_category", "also_bought", "viewed_not_bought")
MAX_N = 20  # products one call may ask for
BEST_SELLERS = timedelta(days=30)
EXCLUDE_BOUGHT = timedelta(days=365)
PURCHASE, VIEW = "purchase", "product_view"
_CHUNK = 500  # ids per IN list
PRODUCT_COLUMNS = ("id", "name", "category", "price", "currency", "url", "image_url", "in_stock", "attributes")

Product = dict[str, Any]


def call_problem(strategy: Any, n: Any, exclude_bought: Any = None) -> str | None:
    """What is wrong with `recommend(strategy, n, exclude_bought)`, or None."""
    if strategy not in STRATEGIES:
        return f"recommend: unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}"
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        return f"recommend: n must be a whole number from 1 to {MAX_N}, got {n!r}"
    if exclude_bought is not None:
        try:
            parse_duration(exclude_bought)
        except ValueError as exc:
            return f"recommend: exclude_bought: {exc}"
    return None


def exclusion(exclude_bought: Any = None) -> timedelta:
    """`exclude_bought` as a duration (default 365d); call_problem has checked it."""
    return EXCLUDE_BOUGHT if exclude_bought is None else parse_duration(exclude_bought)


def product_id(column: Any, dialect: str) -> ColumnElement:
    """The `product_id` property as text when it is a JSON string or whole number, else NULL."""
    if dialect == "postgresql":
        kind = sa.func.jsonb_typeof(column.op("->")(sa.literal("product_id")))
        return sa.case((kind.in_(["string", "number"]), column.op("->>")(sa.literal("product_id"))))
    path = sa.literal('$."product_id"')
    kind = sa.func.json_type(column, path)
    return sa.case((kind.in_(["text", "integer"]), sa.cast(sa.func.json_extract(column, path), sa.Text)))


def _by_code_point(column: Any, dialect: str) -> Any:
    """Ties by id or name in code-point order whatever the database's collation."""
    return column.collate("C") if dialect == "postgresql" else column


def _ranked_in_stock(source: Any, group: Any, product: Any, first: Any, dialect: str) -> Any:
    """The in-stock products of each group of `source`, ranked by `first`, ties by product id in
    code-point order: (group, id, rank)."""
    order = (first, _by_code_point(products.c.id, dialect))
    rank = sa.func.row_number().over(partition_by=group, order_by=order)
    return (
        sa.select(group, products.c.id, rank.label("rank"))
        .select_from(source.join(products, products.c.id == product))
        .where(products.c.in_stock)
        .subquery()
    )


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


def product_row(row: Any) -> Product:
    """A products row as templates read it."""
    found = {name: getattr(row, name) for name in PRODUCT_COLUMNS}
    found["in_stock"] = bool(found["in_stock"])
    found["attributes"] = dict(found["attributes"] or {})
    return found


def _product_columns(table: Any = products) -> list[Any]:
    return [table.c[name] for name in PRODUCT_COLUMNS]


def load_products(conn: Connection, ids: Sequence[str]) -> dict[str, Product]:
    """Products by id (those the catalogue has), in stock or not."""
    found: dict[str, Product] = {}
    for chunk in _chunks(sorted(set(ids))):
        for row in conn.execute(sa.select(*_product_columns()).where(products.c.id.in_(chunk))):
            found[row.id] = product_row(row)
    return found


def bought(conn: Connection, ids: Sequence[str], at: datetime, window: timedelta) -> dict[str, set[str]]:
    """Customer → the products they bought in (at − window, at]."""
    moment = naive_utc(at)
    pid = product_id(events.c.properties, conn.dialect.name)
    found: dict[str, set[str]] = {}
    for chunk in _chunks(ids):
        query = (
            sa.select(events.c.customer_id, pid)
            .where(
                events.c.customer_id.in_(chunk),
                events.c.type == PURCHASE,
                events.c.occurred_at > moment - window,
                events.c.occurred_at <= moment,
                pid.is_not(None),
            )
            .distinct()
        )
        for customer_id, product in conn.execute(query):
            found.setdefault(customer_id, set()).add(product)
    return found


def favourite_categories(conn: Connection, ids: Sequence[str], at: datetime) -> dict[str, str]:
    """Customer → the category of the catalogue they bought from most often (ties: the first by
    code point), over all their purchases up to `at`."""
    dialect = conn.dialect.name
    pid = product_id(events.c.properties, dialect)
    found: dict[str, str] = {}
    for chunk in _chunks(ids):
        counts = (
            sa.select(events.c.customer_id, products.c.category, sa.func.count().label("bought"))
            .select_from(events.join(products, products.c.id == pid))
            .where(
                events.c.customer_id.in_(chunk),
                events.c.type == PURCHASE,
                events.c.occurred_at <= naive_utc(at),
                products.c.category.is_not(None),
            )
            .group_by(events.c.customer_id, products.c.category)
            .subquery()
        )
        order = (counts.c.bought.desc(), _by_code_point(counts.c.category, dialect))
        rank = sa.func.row_number().over(partition_by=counts.c.customer_id, order_by=order)
        ranked = sa.select(counts.c.customer_id, counts.c.category, rank.label("rank")).subquery()
        query = sa.select(ranked.c.customer_id, ranked.c.category).where(ranked.c.rank == 1)
        found.update((row.customer_id, row.category) for row in conn.execute(query))
    return found


def last_purchased(conn: Connection, ids: Sequence[str], at: datetime) -> dict[str, str]:
    """Customer → the product of their most recent purchase naming one (ties: the later imported)."""
    pid = product_id(events.c.properties, conn.dialect.name)
    found: dict[str, str] = {}
    for chunk in _chunks(ids):
        newest = (events.c.occurred_at.desc(), events.c.pk.desc())
        rank = sa.func.row_number().over(partition_by=events.c.customer_id, order_by=newest)
        ranked = (
            sa.select(events.c.customer_id, pid.label("product_id"), rank.label("rank"))
            .where(
                events.c.customer_id.in_(chunk),
                events.c.type == PURCHASE,
                events.c.occurred_at <= naive_utc(at),
                pid.is_not(None),
            )
            .subquery()
        )
        query = sa.select(ranked.c.customer_id, ranked.c.product_id).where(ranked.c.rank == 1)
        found.update((row.customer_id, row.product_id) for row in conn.execute(query))
    return found


def recent_views(conn: Connection, ids: Sequence[str], at: datetime) -> dict[str, list[str]]:
    """Customer → the ids of the products in stock they viewed, most recently viewed first (ties:
    by id)."""
    dialect = conn.dialect.name
    pid = product_id(events.c.properties, dialect)
    found: dict[str, list[str]] = {}
    for chunk in _chunks(ids):
        # The property read once per view (materialized), not once per mention in the query.
        viewed = (
            sa.select(events.c.customer_id, pid.label("product_id"), events.c.occurred_at)
            .where(events.c.customer_id.in_(chunk), events.c.type == VIEW, events.c.occurred_at <= naive_utc(at))
            .cte("viewed")
            .prefix_with("MATERIALIZED")
        )
        views = (
            sa.select(viewed.c.customer_id, viewed.c.product_id, sa.func.max(viewed.c.occurred_at).label("seen"))
            .where(viewed.c.product_id.is_not(None))
            .group_by(viewed.c.customer_id, viewed.c.product_id)
            .subquery()
        )
        ranked = _ranked_in_stock(views, views.c.customer_id, views.c.product_id, views.c.seen.desc(), dialect)
        query = sa.select(ranked).order_by(ranked.c.customer_id, ranked.c.rank)
        for customer_id, product, _ in conn.execute(query):
            found.setdefault(customer_id, []).append(product)
    return found


def best_sellers(conn: Connection, at: datetime, limit: int) -> dict[str, list[Product]]:
    """Category → its products in stock sold in the 30 days up to `at`, most purchases first, the
    first `limit` of each."""
    dialect = conn.dialect.name
    moment = naive_utc(at)
    pid = product_id(events.c.properties, dialect)
    sold = (
        sa.select(pid.label("product_id"), sa.func.count().label("sold"))
        .where(
            events.c.type == PURCHASE,
            events.c.occurred_at > moment - BEST_SELLERS,
            events.c.occurred_at <= moment,
            pid.is_not(None),
        )
        .group_by(pid)
        .subquery()
    )
    order = (sold.c.sold.desc(), _by_code_point(products.c.id, dialect))
    rank = sa.func.row_number().over(partition_by=products.c.category, order_by=order)
    ranked = (
        sa.select(*_product_columns(), rank.label("rank"))
        .select_from(sold.join(products, products.c.id == sold.c.product_id))
        .where(products.c.in_stock, products.c.category.is_not(None))
        .subquery()
    )
    query = sa.select(ranked).where(ranked.c.rank <= limit).order_by(ranked.c.category, ranked.c.rank)
    found: dict[str, list[Product]] = {}
    for row in conn.execute(query):
        found.setdefault(row.category, []).append(product_row(row))
    return found


def co_purchased(conn: Connection, anchors: Sequence[str] | None, at: datetime, limit: int) -> dict[str, list[str]]:
    """Anchor product → the ids of the other products in stock bought by the customers who bought
    it (up to `at`), most such customers first, the first `limit` of each. `anchors` None: every
    product anyone bought (one pass, for an occurrence that needs many)."""
    dialect = conn.dialect.name
    pid = product_id(events.c.properties, dialect)
    # Who bought what, once per customer and product: the property is read once per purchase
    # (materialized), and the self-join below counts customers, not purchases. 4-5x faster than
    # joining the buyers to their events and counting distinct customers (measured at 10k).
    owned = (
        sa.select(events.c.customer_id, pid.label("product"))
        .where(events.c.type == PURCHASE, events.c.occurred_at <= naive_utc(at), pid.is_not(None))
        .distinct()
        .cte("owned")
        .prefix_with("MATERIALIZED")
    )
    buyer, other = owned.alias("buyer"), owned.alias("other")
    found: dict[str, list[str]] = {}
    for chunk in [None] if anchors is None else _chunks(sorted(set(anchors))):
        pairs = (
            sa.select(buyer.c.product.label("anchor"), other.c.product.label("product_id"), sa.func.count().label("n"))
            .select_from(buyer.join(other, other.c.customer_id == buyer.c.customer_id))
            .where(other.c.product != buyer.c.product, *([] if chunk is None else [buyer.c.product.in_(chunk)]))
            .group_by(buyer.c.product, other.c.product)
            .subquery()
        )
        ranked = _ranked_in_stock(pairs, pairs.c.anchor, pairs.c.product_id, pairs.c.n.desc(), dialect)
        query = sa.select(ranked).where(ranked.c.rank <= limit).order_by(ranked.c.anchor, ranked.c.rank)
        for anchor, product, _ in conn.execute(query):
            found.setdefault(anchor, []).append(product)
    return found
