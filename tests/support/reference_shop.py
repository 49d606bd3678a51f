"""A deliberately naive Python version of SPEC "Products and recommendations", one customer at a
time: the oracle the recommendation queries are compared with."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

BEST_SELLERS = timedelta(days=30)
EXCLUDE_BOUGHT = timedelta(days=365)


def product_of(event: dict) -> str | None:
    """The product an event names: its `product_id` as text, when that is text or a whole number."""
    value = event["properties"].get("product_id")
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return None


def recommend(
    strategy: str,
    customer_id: str,
    n: int,
    catalogue: dict[str, dict[str, Any]],
    history: list[dict],
    at: datetime,
    exclude_bought: timedelta = EXCLUDE_BOUGHT,
) -> list[str]:
    """The ids `recommend(strategy, n)` gives this customer. `history`: every customer's events,
    each with a `seq` (import order); `catalogue`: id → {category, in_stock}."""
    seen = [e for e in history if e["occurred_at"] <= at and product_of(e) is not None]
    purchases = [e for e in seen if e["type"] == "purchase"]
    mine = [e for e in purchases if e["customer_id"] == customer_id]
    bought = {product_of(e) for e in mine if e["occurred_at"] > at - exclude_bought}

    def shelf(ranked: list[str]) -> list[str]:
        return [p for p in ranked if catalogue.get(p, {}).get("in_stock") and p not in bought][:n]

    if strategy == "top_in_favourite_category":
        categories = Counter(
            catalogue[p]["category"] for e in mine if (p := product_of(e)) in catalogue and catalogue[p]["category"]
        )
        if not categories:
            return []
        favourite = min(categories, key=lambda c: (-categories[c], c))
        sold = Counter(product_of(e) for e in purchases if e["occurred_at"] > at - BEST_SELLERS)
        ranked = sorted(
            (p for p in sold if catalogue.get(p, {}).get("category") == favourite), key=lambda p: (-sold[p], p)
        )
        return shelf(ranked)
    if strategy == "also_bought":
        if not mine:
            return []
        anchor = product_of(max(mine, key=lambda e: (e["occurred_at"], e["seq"])))
        buyers = {e["customer_id"] for e in purchases if product_of(e) == anchor}
        together: Counter[str] = Counter()
        for buyer in buyers:
            together.update({product_of(e) for e in purchases if e["customer_id"] == buyer} - {anchor})
        return shelf(sorted(together, key=lambda p: (-together[p], p)))
    if strategy == "viewed_not_bought":
        last_seen: dict[str, datetime] = {}
        for e in seen:
            if e["type"] == "product_view" and e["customer_id"] == customer_id:
                product = product_of(e)
                last_seen[product] = max(last_seen.get(product, e["occurred_at"]), e["occurred_at"])
        return shelf(sorted(last_seen, key=lambda p: (-last_seen[p].timestamp(), p)))
    raise ValueError(strategy)
