"""The demo shop's catalogue: 300 products in the demo's five categories, sold in 30 product
lines (Alpine, Harbor, …) with two products per line and category. Each demo customer has a
taste — two favourite lines — and mostly views and buys from them, so the buyers of an Alpine
boot also bought the Alpine scarf (`also_bought` has something to say), and a few lines sell
far more than the rest (`top_in_favourite_category` has best sellers).

Every choice here comes from random streams of its own, so adding the catalogue left every
other demo number (customers, event times, amounts, audiences) as it was."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

LINES = (
    "Alpine", "Harbor", "Metro", "Nordic", "Coast", "Summit", "Meadow", "Canyon", "Fjord", "Prairie",
    "Urban", "Dune", "Glacier", "Forest", "Island", "Delta", "Ridge", "Tundra", "Savanna", "Lagoon",
    "Cedar", "Maple", "Willow", "Aspen", "Birch", "Sierra", "Atlas", "Orbit", "Pacific", "Highland",
)  # fmt: skip
# category → (two kinds of product, base price)
KINDS = {
    "shoes": (("Trail Runner", "Leather Boot"), 119.0),
    "knitwear": (("Merino Sweater", "Cashmere Scarf"), 89.0),
    "outerwear": (("Rain Jacket", "Down Parka"), 229.0),
    "bags": (("Canvas Tote", "Weekender Bag"), 129.0),
    "accessories": (("Wool Socks", "Leather Belt"), 39.0),
}
# A few lines sell far more than the rest (Zipf-like weights).
POPULARITY = [1 / (rank + 1) for rank in range(len(LINES))]
OWN_TASTE = 0.75  # how often a customer looks at their own lines rather than what is popular
SHOP = "https://shop.example"
ID_PREFIX = "demo-"


@dataclass(frozen=True)
class Item:
    id: str
    name: str
    category: str


def item(category: str, line: int, kind: int) -> Item:
    noun = KINDS[category][0][kind]
    return Item(f"{ID_PREFIX}{category[:3]}-{line:02d}{kind}", f"{LINES[line]} {noun}", category)


def catalogue() -> list[dict[str, Any]]:
    """The products, as rows for `nudge import products` (about 1 in 12 is out of stock)."""
    rng = random.Random("demo/catalogue")
    rows = []
    for category, (_, base) in KINDS.items():
        for line in range(len(LINES)):
            for kind in (0, 1):
                found = item(category, line, kind)
                price = round(base * (1 + kind * 0.6) * rng.uniform(0.7, 1.4)) - 0.1
                rows.append(
                    {
                        "id": found.id,
                        "name": found.name,
                        "category": category,
                        "price": price,
                        "currency": "USD",
                        "url": f"{SHOP}/products/{found.id}",
                        "image_url": f"{SHOP}/images/{found.id}.jpg",
                        "in_stock": rng.random() >= 1 / 12,
                        "attributes": {"line": LINES[line]},
                    }
                )
    return rows


class Taste:
    """One customer's two favourite lines; which product of a category they look at next."""

    def __init__(self, customer_id: str):
        self.rng = random.Random(f"{customer_id}/taste")
        self.lines = self.rng.sample(range(len(LINES)), 2)  # any two: the popular lines sell on their own

    def pick(self, category: str) -> Item:
        if self.rng.random() < OWN_TASTE:
            line = self.rng.choice(self.lines)
        else:
            line = self.rng.choices(range(len(LINES)), weights=POPULARITY)[0]
        return item(category, line, self.rng.randrange(2))
