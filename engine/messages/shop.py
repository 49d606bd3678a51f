"""`products` and `recommend(strategy, n=3)` in templates, for a batch of customers at once.

A `Shop` lives for one occurrence (one instant) and keeps what is the same for every customer:
the rankings (best sellers per category, what the buyers of a product also bought) and the
products already read. A `Batch` serves the customers of one dispatch batch: the first
`recommend` of a strategy runs that strategy's per-customer query for the whole batch (their
favourite category, last purchase or views, and what they bought within `exclude_bought`), so
no query is ever made for one customer. Nothing is read unless a template asks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jinja2
from sqlalchemy.engine import Connection

from engine.audience import recommend as sql
from engine.audience.recommend import Product

# Products kept per ranking (a category's best sellers, a product's co-purchases). A customer who
# bought so many of them that fewer than n remain has the ranking read again, four times longer.
RANKING = 100


# Anchors from which one read of every product's co-purchases is cheaper than reading theirs.
ALL_AT_ONCE = 100


@dataclass
class Ranking:
    products: list[Product]
    complete: bool  # the whole ranking, not its first `limit`


def product_key(value: Any) -> str | None:
    """A product id as the catalogue keeps it (text): events from CSV carry 1001 as a number."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _ranked(found: dict[str, list[Product]], keys: Iterable[str], limit: int) -> dict[str, Ranking]:
    return {key: Ranking(found.get(key, []), len(found.get(key, [])) < limit) for key in keys}


class Shop:
    """The caches of one occurrence at instant `at`."""

    def __init__(self, at: datetime, ranking: int = RANKING):
        self.at, self.ranking = at, ranking
        self.products: dict[str, Product | None] = {}  # None: not in the catalogue
        self.sellers: dict[str, Ranking] | None = None
        self.sellers_limit = ranking
        self.co: dict[str, Ranking] = {}
        self.co_limit: dict[str, int] = {}
        self.co_reads, self.co_all = 0, False

    def batch(self, conn: Connection, ids: Sequence[str], hinted: Iterable[Any] = ()) -> Batch:
        """The customers of one batch; `hinted`: product ids their events name (read together,
        the first time a template looks a product up)."""
        return Batch(self, conn, list(ids), {k for v in hinted if (k := product_key(v)) is not None})

    def remember(self, found: Iterable[Product]) -> None:
        for product in found:
            self.products[product["id"]] = product

    def best_sellers(self, conn: Connection, category: str, grow: bool = False) -> Ranking:
        if self.sellers is None or grow:
            if grow:
                self.sellers_limit *= 4
            found = sql.best_sellers(conn, self.at, self.sellers_limit)
            self.remember(p for ranking in found.values() for p in ranking)
            self.sellers = _ranked(found, found, self.sellers_limit)
        return self.sellers.get(category) or Ranking([], True)

    def co_purchases(self, conn: Connection, anchors: Iterable[str], grow: str | None = None) -> None:
        """Read the rankings of the anchors not read yet (or read `grow`'s again, longer). Reading
        rankings costs one pass over every purchase, however few anchors: an occurrence that needs
        many (a full dispatch batch), or needs some a second time, reads every product's at once,
        and never again (at 100k customers: 3.3 s once, where each batch's own took 1.4 s)."""
        if grow:
            self.co_limit[grow] = self.co_limit.get(grow, self.ranking) * 4
            self._read_co(conn, [grow], self.co_limit[grow])
            return
        missing = sorted({a for a in anchors if a not in self.co})
        if not missing:
            return
        if self.co_all:  # every product's ranking was read: these have no co-purchases
            self.co.update((a, Ranking([], True)) for a in missing)
        elif self.co_reads or len(missing) >= ALL_AT_ONCE:
            self.co_all = True
            self._read_co(conn, None, self.ranking)
            self.co.update((a, Ranking([], True)) for a in missing if a not in self.co)
        else:
            self._read_co(conn, missing, self.ranking)
        self.co_reads += 1

    def read_products(self, conn: Connection, ids: Iterable[str]) -> None:
        """Products not read yet, in one query (those the catalogue lacks are remembered as None)."""
        unread = sorted({pid for pid in ids if pid not in self.products})
        if unread:
            found = sql.load_products(conn, unread)
            self.products.update((pid, found.get(pid)) for pid in unread)

    def _read_co(self, conn: Connection, anchors: list[str] | None, limit: int) -> None:
        found = sql.co_purchased(conn, anchors, self.at, limit)
        self.read_products(conn, (pid for ranked in found.values() for pid in ranked))
        rankings = {
            anchor: Ranking([p for pid in ranked if (p := self.products.get(pid))], len(ranked) < limit)
            for anchor, ranked in found.items()
        }
        if anchors is None:  # a ranking read earlier (perhaps longer) stays
            rankings = {k: v for k, v in rankings.items() if k not in self.co}
        else:
            rankings.update((a, Ranking([], True)) for a in anchors if a not in found)
        self.co.update(rankings)


class Batch:
    """`products` and `recommend` for the customers of one batch."""

    def __init__(self, shop: Shop, conn: Connection, ids: list[str], hinted: set[str]):
        self.shop, self.conn, self.ids, self.hinted = shop, conn, ids, hinted
        self.bought: dict[timedelta, dict[str, set[str]]] = {}
        self.anchors: dict[str, dict[str, Any]] = {}
        self.products = Products(self)

    def recommender(self, customer_id: str) -> Callable[..., list[Product]]:
        def recommend(strategy: str, n: int = 3, exclude_bought: Any = None) -> list[Product]:
            """`recommend('also_bought', 3)`: up to n products for this customer."""
            return self.recommend(customer_id, strategy, n, exclude_bought)

        return recommend

    def recommend(self, customer_id: str, strategy: str, n: int, exclude_bought: Any) -> list[Product]:
        problem = sql.call_problem(strategy, n, exclude_bought)
        if problem is not None:
            raise jinja2.TemplateRuntimeError(problem)
        window = sql.exclusion(exclude_bought)
        if window not in self.bought:
            self.bought[window] = sql.bought(self.conn, self.ids, self.shop.at, window)
        skip = self.bought[window].get(customer_id, set())
        anchor = self._anchors(strategy).get(customer_id)
        if anchor is None:
            return []
        if strategy == "viewed_not_bought":  # the customer's own views: the whole list is at hand
            return [p for p in anchor if p["id"] not in skip][:n]
        return self._pick(strategy, anchor, skip, n)

    def _anchors(self, strategy: str) -> dict[str, Any]:
        """Each customer's place in the strategy's ranking, read for the whole batch at once."""
        if strategy not in self.anchors:
            at = self.shop.at
            if strategy == "top_in_favourite_category":
                self.anchors[strategy] = sql.favourite_categories(self.conn, self.ids, at)
            elif strategy == "also_bought":
                self.anchors[strategy] = sql.last_purchased(self.conn, self.ids, at)
                self.shop.co_purchases(self.conn, self.anchors[strategy].values())
            else:
                views = sql.recent_views(self.conn, self.ids, at)
                self.shop.read_products(self.conn, {pid for seen in views.values() for pid in seen})
                known = self.shop.products
                self.anchors[strategy] = {cid: [known[pid] for pid in seen] for cid, seen in views.items()}
        return self.anchors[strategy]

    def _pick(self, strategy: str, anchor: str, skip: set[str], n: int) -> list[Product]:
        grow = False
        while True:
            if strategy == "top_in_favourite_category":
                ranking = self.shop.best_sellers(self.conn, anchor, grow)
            else:
                if grow:
                    self.shop.co_purchases(self.conn, (), grow=anchor)
                ranking = self.shop.co[anchor]
            picked = [p for p in ranking.products if p["id"] not in skip][:n]
            if len(picked) == n or ranking.complete:
                return picked
            grow = True


class Products:
    """`products[ID]`: a product of the catalogue, in stock or not; an error that says so when a
    template reads one the catalogue does not have (falsy for `{% if products[id] %}`)."""

    def __init__(self, batch: Batch):
        self.batch = batch
        self.prefetched = False

    def __getitem__(self, key: Any) -> Any:
        found = self.get(key)
        if found is None:
            return jinja2.Undefined(hint=f"no product {key!r} in the catalogue (nudge import products)")
        return found

    def __contains__(self, key: Any) -> bool:
        return self.get(key) is not None

    def get(self, key: Any, default: Any = None) -> Any:
        wanted = product_key(key)
        if wanted is None:
            return default
        shop, batch = self.batch.shop, self.batch
        if not self.prefetched and wanted not in shop.products:
            # The products the batch's events name, in one query, the first time any is asked for.
            self.prefetched = True
            self._read({wanted} | batch.hinted)
        if wanted not in shop.products:
            self._read({wanted})
        found = shop.products.get(wanted)
        return default if found is None else found

    def _read(self, ids: set[str]) -> None:
        self.batch.shop.read_products(self.batch.conn, ids)


# --- validate's sample customer -----------------------------------------------------------------


def sample_product(index: int) -> Product:
    return {
        "id": f"sample-{index}",
        "name": f"Sample product {index}",
        "category": "sample",
        "price": 10.0 * index,
        "currency": None,
        "url": f"https://shop.example/products/sample-{index}",
        "image_url": f"https://shop.example/images/sample-{index}.jpg",
        "in_stock": True,
        "attributes": {},
    }


class SampleProducts(dict):
    """`products[ID]` for validate's synthetic customer: any id is a sample product."""

    def __missing__(self, key: Any) -> Product:
        return {**sample_product(1), "id": str(key)}


def sample_recommend(strategy: str, n: int = 3, exclude_bought: Any = None) -> list[Product]:
    """`recommend` for validate's synthetic customer: the call checked, n sample products."""
    problem = sql.call_problem(strategy, n, exclude_bought)
    if problem is not None:
        raise jinja2.TemplateRuntimeError(problem)
    return [sample_product(i) for i in range(1, n + 1)]


def sample_names() -> dict[str, Any]:
    """`products` and `recommend` for a context with no customer from the store."""
    return {"products": SampleProducts(), "recommend": sample_recommend}
