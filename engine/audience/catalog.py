"""What the store holds, so a marketer writes rules against real names and values: event types
with counts and first/last time, each type's property names with their JSON types and most
frequent values, customer fields and custom attributes with fill rate and most frequent values,
and the product catalogue by category.

Property and attribute statistics read the most recent SAMPLE events and customers: enough to
name what exists without scanning a store of millions."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.clock import iso_utc
from engine.core.fields import CUSTOMER_FIELDS
from engine.store.tables import customers, events, products

SAMPLE = 100_000
TOP = 5
# Fields whose values identify a person: the catalog counts them and never lists them.
PERSONAL = frozenset({"first_name", "last_name", "birthday", "signed_up_at", "unsubscribed_at"})
# A property with at most this many distinct values is a category: compared values are checked.
FEW = 50


@dataclass
class FieldStats:
    """One property or attribute: how often it is filled, its JSON types, its frequent values."""

    filled: int = 0
    types: Counter = field(default_factory=Counter)
    values: Counter = field(default_factory=Counter)
    distinct_capped: bool = False

    def add(self, value: Any) -> None:
        self.filled += 1
        self.types[_json_type(value)] += 1
        if isinstance(value, (str, int, float, bool)) and not self.distinct_capped:
            self.values[value] += 1
            if len(self.values) > 10 * FEW:
                self.distinct_capped = True  # many distinct values: not a category

    @property
    def categorical(self) -> bool:
        return not self.distinct_capped and 0 < len(self.values) <= FEW

    def as_json(self, total: int) -> dict[str, Any]:
        return {
            "fill_rate": round(self.filled / total, 4) if total else 0.0,
            "types": dict(self.types.most_common()),
            "top_values": [{"value": v, "count": n} for v, n in self.values.most_common(TOP)],
            "distinct": None if self.distinct_capped else len(self.values),
        }


@dataclass
class EventType:
    name: str
    count: int
    first: datetime | None
    last: datetime | None
    sampled: int = 0
    properties: dict[str, FieldStats] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.name,
            "count": self.count,
            "first": iso_utc(self.first),
            "last": iso_utc(self.last),
            "properties": {k: v.as_json(self.sampled) for k, v in sorted(self.properties.items())},
        }


@dataclass
class Catalog:
    customers: int = 0
    events: dict[str, EventType] = field(default_factory=dict)
    fields: dict[str, FieldStats] = field(default_factory=dict)
    attributes: dict[str, FieldStats] = field(default_factory=dict)
    sampled_customers: int = 0
    products: dict[str, Any] = field(default_factory=lambda: {"count": 0, "in_stock": 0, "categories": []})

    def as_json(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "products": self.products,
            "event_types": [e.as_json() for e in sorted(self.events.values(), key=lambda e: -e.count)],
            "customer_fields": {k: v.as_json(self.sampled_customers) for k, v in self.fields.items()},
            "attributes": {k: v.as_json(self.sampled_customers) for k, v in sorted(self.attributes.items())},
            "sample": SAMPLE,
        }


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def product_summary(conn: Connection) -> dict[str, Any]:
    """The product catalogue (`nudge import products`): how many, how many in stock, per category
    (one GROUP BY on the category index)."""
    in_stock = sa.func.sum(sa.case((products.c.in_stock, 1), else_=0))
    query = sa.select(products.c.category, sa.func.count(), in_stock).group_by(products.c.category)
    groups = sorted(conn.execute(query).all(), key=lambda row: (row[0] is None, row[0] or ""))
    return {
        "count": sum(row[1] for row in groups),
        "in_stock": sum(int(row[2] or 0) for row in groups),
        "categories": [{"category": c, "products": n, "in_stock": int(k or 0)} for c, n, k in groups],
    }


def build_catalog(conn: Connection, sample: int = SAMPLE) -> Catalog:
    """Read the catalog from the store (one GROUP BY over events, then recent samples)."""
    catalog = Catalog(products=product_summary(conn))
    catalog.customers = conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one()
    grouped = sa.select(
        events.c.type, sa.func.count(), sa.func.min(events.c.occurred_at), sa.func.max(events.c.occurred_at)
    ).group_by(events.c.type)
    for kind, count, first, last in conn.execute(grouped):
        catalog.events[kind] = EventType(kind, count, first, last)
    recent = sa.select(events.c.type, events.c.properties).order_by(events.c.pk.desc()).limit(sample)
    for kind, properties in conn.execute(recent):
        entry = catalog.events[kind]
        entry.sampled += 1
        for key, value in (properties or {}).items():
            entry.properties.setdefault(key, FieldStats()).add(value)
    columns = [customers.c[name] for name in CUSTOMER_FIELDS if name not in ("id", "email", "phone")]
    people = sa.select(*columns, customers.c.attributes).order_by(customers.c.id).limit(sample)
    for row in conn.execute(people):
        catalog.sampled_customers += 1
        for column in columns:
            value = getattr(row, column.name)
            stats = catalog.fields.setdefault(column.name, FieldStats())
            if value is None:
                continue
            if column.name in PERSONAL:  # how often it is filled, never whose it is
                stats.filled += 1
            else:
                stats.add(value if not isinstance(value, datetime) else iso_utc(value))
        for key, value in (row.attributes or {}).items():
            catalog.attributes.setdefault(key, FieldStats()).add(value)
    return catalog
