"""`nudge demo`: a deterministic synthetic shop, written through the real importer."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from engine.core.clock import aware_utc
from engine.core.errors import Refused
from engine.ingest.demo_catalogue import Taste, catalogue
from engine.ingest.importer import import_rows
from engine.ingest.products import load_products
from engine.store import Store
from engine.store.tables import consent_log, coupons, customers, deliveries, events, products, subscriptions, tasks

PREFIX = "demo-"
FIRST = [
    "Ana",
    "Ben",
    "Chen",
    "Dara",
    "Emil",
    "Fatima",
    "Goro",
    "Hana",
    "Ivan",
    "Jade",
    "Kofi",
    "Lena",
    "Mei",
    "Noor",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Vera",
    "Wei",
    "Yusuf",
    "Zoe",
]
LAST = [
    "Almeida",
    "Brown",
    "Chen",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Jensen",
    "Kim",
    "Li",
    "Martin",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Wang",
]
PLACES = [  # country, time zone, city, weight
    ("CN", "Asia/Shanghai", "Shanghai", 30),
    ("US", "America/New_York", "New York", 15),
    ("US", "America/Los_Angeles", "Los Angeles", 10),
    ("DE", "Europe/Berlin", "Berlin", 10),
    ("FR", "Europe/Paris", "Paris", 8),
    ("GB", "Europe/London", "London", 8),
    ("JP", "Asia/Tokyo", "Tokyo", 8),
    ("BR", "America/Sao_Paulo", "São Paulo", 6),
    ("AU", "Australia/Sydney", "Sydney", 5),
]
PRODUCTS = [  # id, name, category, price: what a customer looks at next (demo_catalogue names it)
    ("p-101", "Trail Running Shoes", "shoes", 119.0),
    ("p-102", "Leather Boots", "shoes", 189.0),
    ("p-201", "Merino Sweater", "knitwear", 89.0),
    ("p-202", "Cashmere Scarf", "knitwear", 149.0),
    ("p-301", "Rain Jacket", "outerwear", 229.0),
    ("p-302", "Down Parka", "outerwear", 349.0),
    ("p-401", "Canvas Tote", "bags", 39.0),
    ("p-402", "Weekender Bag", "bags", 259.0),
    ("p-501", "Wool Socks (3 pack)", "accessories", 24.0),
    ("p-502", "Leather Belt", "accessories", 59.0),
]


# A valid number per country, written as a shop's export has it (national format): the importer
# makes them E.164 with the customer's country, as it does real ones.
PHONES: dict[str, Callable[[int], str]] = {
    "CN": lambda i: f"138 {i // 10000 % 10000:04d} {i % 10000:04d}",
    "US": lambda i: f"(201) 555-{i % 10000:04d}",
    "DE": lambda i: f"030 {2000000 + i % 1000000}",
    "FR": lambda i: f"06 {i // 10000 % 10000:04d} {i % 10000:04d}",
    "GB": lambda i: f"07400 {i % 1000000:06d}",
    "JP": lambda i: f"090-{1000 + i // 10000 % 9000:04d}-{i % 10000:04d}",
    "BR": lambda i: f"(11) 9{6000 + i // 10000 % 4000:04d}-{i % 10000:04d}",
    "AU": lambda i: f"04{12 + i // 1000000 % 80:02d} {i // 1000 % 1000:03d} {i % 1000:03d}",
}


def _customer(rng: random.Random, index: int, at: datetime) -> dict[str, Any]:
    country, zone, city, _ = rng.choices(PLACES, weights=[p[3] for p in PLACES])[0]
    first, last = rng.choice(FIRST), rng.choice(LAST)
    row: dict[str, Any] = {
        "id": f"{PREFIX}{index:05d}",
        "first_name": first,
        "last_name": last,
        "email": f"{first}.{last}.{index}@example.com".lower(),
        "phone": PHONES[country](index),
        "country": country,
        "city": city,
        "locale": {"CN": "zh-CN", "JP": "ja-JP", "DE": "de-DE", "FR": "fr-FR", "BR": "pt-BR"}.get(country, "en-US"),
        "signed_up_at": (at - timedelta(days=rng.randint(1, 1100))).isoformat(),
        "email_opt_in": rng.random() < 0.8,
        "attributes": {"loyalty_points": rng.randint(0, 5000), "channel": rng.choice(["web", "app", "store"])},
    }
    # SMS consent from a stream of its own, so adding it left every other demo number as it was.
    row["sms_opt_in"] = random.Random(f"{index}/sms").random() < 0.6
    if rng.random() < 0.85:  # some customers have no zone: the workspace zone applies
        row["timezone"] = zone
    if rng.random() < 0.03:
        row["unsubscribed_at"] = (at - timedelta(days=rng.randint(1, 300))).isoformat()
    local_today = at.astimezone(ZoneInfo(row.get("timezone", "Asia/Shanghai"))).date()
    roll = rng.random()
    if roll < 0.01:  # a birthday today, so the birthday campaign has someone to greet
        row["birthday"] = f"{rng.randint(1960, 2004)}-{local_today.month:02d}-{local_today.day:02d}"
    elif roll < 0.012:
        row["birthday"] = "--02-29"
    elif roll < 0.85:
        born = datetime(rng.randint(1955, 2006), 1, 1) + timedelta(days=rng.randint(0, 364))
        row["birthday"] = born.date().isoformat()
    return row


def _events(rng: random.Random, customer_id: str, at: datetime) -> Iterator[dict[str, Any]]:
    # Skewed activity: most customers do little, a few do a lot (Pareto), some have gone quiet.
    activity = min(int(rng.paretovariate(1.3)), 60)
    quiet_since = rng.choice([0, 0, 0, 30, 120, 200, 400])
    span = 720
    taste = Taste(customer_id)  # which product of the category, from the catalogue (a stream of its own)
    for _ in range(activity * 3):
        day = rng.uniform(quiet_since, span)
        product = rng.choice(PRODUCTS)
        chosen = taste.pick(product[2])
        named = {"product_id": chosen.id, "product_name": chosen.name, "category": product[2]}
        yield {
            "customer_id": customer_id,
            "type": "product_view",
            "occurred_at": at - timedelta(days=day),
            "properties": named,
        }
        if rng.random() < 0.3:
            yield {
                "customer_id": customer_id,
                "type": "purchase",
                "occurred_at": min(at - timedelta(days=day) + timedelta(minutes=rng.randint(5, 600)), at),
                "properties": {
                    "order_id": f"o-{customer_id}-{rng.randint(0, 10**9)}",
                    **named,
                    "amount": round(product[3] * rng.uniform(0.8, 2.5), 2),
                    "currency": "USD",
                },
            }
    if rng.random() < 0.12:  # browsed in the last three days without buying
        chosen = taste.pick(rng.choice(PRODUCTS)[2])
        yield {
            "customer_id": customer_id,
            "type": "product_view",
            "occurred_at": at - timedelta(hours=rng.uniform(1, 70)),
            "properties": {"product_id": chosen.id, "product_name": chosen.name, "category": chosen.category},
        }
    if rng.random() < 0.25:
        yield {
            "customer_id": customer_id,
            "type": "survey",
            "occurred_at": at - timedelta(days=rng.uniform(0, 60)),
            "properties": {"score": rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 4])[0]},
        }
    if rng.random() < 0.03:
        yield {
            "customer_id": customer_id,
            "type": "complaint",
            "occurred_at": at - timedelta(days=rng.uniform(0, 20)),
            "properties": {"topic": rng.choice(["late delivery", "damaged item", "wrong size", "refund"])},
        }
    # Email engagement from a stream of its own, so adding it left every other demo number as it was.
    clicks = random.Random(f"{customer_id}/email")
    if clicks.random() < 0.2:
        yield {
            "customer_id": customer_id,
            "type": "email_click",
            "occurred_at": at - timedelta(days=clicks.uniform(0, 10)),
            "properties": {"campaign": "newsletter"},
        }


def clear_demo(store: Store) -> None:
    """Remove earlier demo customers and everything hanging off them (real data is untouched)."""
    like = PREFIX + "%"
    with store.engine.begin() as conn:
        demo_deliveries = sa.select(deliveries.c.id).where(deliveries.c.customer_id.like(like))
        conn.execute(sa.delete(coupons).where(coupons.c.delivery_id.in_(demo_deliveries)))
        conn.execute(sa.delete(tasks).where(tasks.c.delivery_id.in_(demo_deliveries)))
        conn.execute(sa.delete(deliveries).where(deliveries.c.customer_id.like(like)))
        conn.execute(sa.delete(events).where(events.c.customer_id.like(like)))
        conn.execute(sa.delete(subscriptions).where(subscriptions.c.customer_id.like(like)))
        conn.execute(sa.delete(consent_log).where(consent_log.c.customer_id.like(like)))
        conn.execute(sa.delete(customers).where(customers.c.id.like(like)))
        conn.execute(sa.delete(products).where(products.c.id.like(like)))


def real_customers(store: Store) -> int:
    """Customers that are not the demo's own: a store holding any is somebody's real shop."""
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(customers.c.id.not_like(PREFIX + "%"))).scalar_one()


def build_demo(store: Store, at: datetime, size: int = 3000, seed: int = 7, force: bool = False) -> tuple[int, int]:
    """Replace the demo customers with `size` fresh ones and their history up to `at`. A store with
    real customers is refused unless `force`: 3,000 synthetic shoppers in production would be
    emailed by the next run like anyone else."""
    real = real_customers(store)
    if real and not force:
        raise Refused(
            f"the store holds {real:,} customers that are not demo customers: nudge demo would add "
            f"{size:,} synthetic ones beside them, and every campaign would reach those too. "
            "Use a workspace of its own for the demo (nudge init DIR), or --force if you mean it"
        )
    at = aware_utc(at)
    rng = random.Random(seed)
    people = [_customer(rng, i, at) for i in range(1, size + 1)]
    clear_demo(store)
    load_products(store, enumerate(catalogue(), start=1), path="<demo>", untyped=False, now=at)
    import_rows(store, "customers", enumerate(people, start=1), path="<demo>", untyped=False, now=at)
    history = []
    for person in people:
        for event in _events(rng, person["id"], at):
            event["occurred_at"] = event["occurred_at"].isoformat()
            history.append(event)
    result = import_rows(store, "events", enumerate(history, start=1), path="<demo>", untyped=False, now=at)
    store.analyze()
    return len(people), result.written
