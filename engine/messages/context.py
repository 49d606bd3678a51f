"""Template context for a batch of customers: ``customer``, ``last.TYPE``, ``products``,
``recommend`` and friends."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import jinja2
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.audience.compiler import EvalContext, event_filters
from engine.audience.trigger import trigger_events
from engine.core.clock import aware_utc, naive_utc
from engine.core.fields import CUSTOMER_FIELDS
from engine.messages.shop import Shop
from engine.messages.templates import LastEvents
from engine.rules.conditions import matched_names
from engine.store.tables import customers, events

_CHUNK = 500


def aware_or_none(value: datetime | None) -> datetime | None:
    return aware_utc(value) if value is not None else None


def customer_dict(row: Any) -> dict[str, Any]:
    """A customer row as templates and explain see it (timestamps carry UTC)."""
    data = {name: getattr(row, name) for name in CUSTOMER_FIELDS}
    for name in ("signed_up_at", "unsubscribed_at"):
        data[name] = aware_or_none(data[name])
    data["attributes"] = dict(row.attributes or {})
    return data


def load_customers(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Customer dicts for ids, read in chunks."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        for row in conn.execute(sa.select(customers).where(customers.c.id.in_(chunk))):
            found[row.id] = customer_dict(row)
    return found


def _latest(
    conn: Connection, ids: Sequence[str], filters: list[Any], by_type: bool
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(customer id, event) for the most recent event matching `filters` per customer (and per
    type when `by_type`), read in chunks of customers."""
    partition = (events.c.customer_id, events.c.type) if by_type else (events.c.customer_id,)
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        ranked = (
            sa.select(
                events.c.customer_id,
                events.c.type,
                events.c.occurred_at,
                events.c.properties,
                sa.func.row_number()
                .over(partition_by=partition, order_by=(events.c.occurred_at.desc(), events.c.pk.desc()))
                .label("rank"),
            )
            .where(events.c.customer_id.in_(chunk), *filters)
            .subquery()
        )
        for row in conn.execute(sa.select(ranked).where(ranked.c.rank == 1)):
            yield (
                row.customer_id,
                {
                    "type": row.type,
                    "occurred_at": aware_or_none(row.occurred_at),
                    "properties": dict(row.properties or {}),
                },
            )


def load_last_events(conn: Connection, ids: Sequence[str], at: datetime) -> dict[str, LastEvents]:
    """For each customer, the most recent event of each type at or before ``at`` (one query a chunk)."""
    result: dict[str, LastEvents] = {cid: LastEvents() for cid in ids}
    for customer_id, event in _latest(conn, ids, [events.c.occurred_at <= naive_utc(at)], by_type=True):
        result[customer_id][event["type"]] = event
    return result


class MatchedEvents(dict[str, Any]):
    """``matched.NAME``: the most recent event that satisfied that audience leaf; an error that
    says so when a template reads one the customer does not have."""

    def __missing__(self, key: str) -> jinja2.Undefined:
        return jinja2.Undefined(hint=f"this customer has no event matching the audience leaf {key!r}")


def load_matched(conn: Connection, ids: Sequence[str], leaves: dict[str, Any], ctx: EvalContext) -> dict[str, Any]:
    """For each customer and named leaf, its most recent event within the leaf's type, window and
    `where` (one query per leaf and chunk)."""
    result: dict[str, MatchedEvents] = {cid: MatchedEvents() for cid in ids}
    for name, leaf in leaves.items():
        for customer_id, event in _latest(conn, ids, event_filters(leaf, ctx), by_type=False):
            result[customer_id][name] = event
    return result


def _named_products(*events_by_customer: Mapping[str, Any]) -> Iterator[Any]:
    """The `product_id` of every event in these contexts: what `products[...]` is likely asked."""
    for found in events_by_customer:
        for event in found.values():
            if isinstance(event, Mapping):
                yield (event.get("properties") or {}).get("product_id")


def build_contexts(
    conn: Connection,
    ids: Sequence[str],
    at: datetime,
    campaign: Any,
    coupons: dict[str, dict[str, dict[str, Any]]] | None = None,
    segments: Mapping[str, Any] | None = None,
    need_last: bool = True,
    shop: Shop | None = None,
) -> dict[str, dict[str, Any]]:
    """Render contexts for a batch of customers of one campaign. `need_last=False` (no template
    reads `last`) skips the query for each customer's latest event of every type. `shop`: the
    occurrence's product caches (a new one when None); `products` and `recommend` read the store
    through `conn` while templates render, so it stays open until they have."""
    people = load_customers(conn, ids)
    last = load_last_events(conn, ids, at) if need_last else {cid: LastEvents() for cid in ids}
    leaves, _ = matched_names(campaign.audience, segments)
    # Event filters do not depend on a time zone (only birthdays do): UTC is exact here.
    ctx = EvalContext(at=at, timezone="UTC", dialect=conn.dialect.name, segments=segments)
    matched = load_matched(conn, ids, leaves, ctx) if leaves else {cid: MatchedEvents() for cid in ids}
    campaign_info = {"name": campaign.campaign, "description": campaign.description, "priority": campaign.priority}
    fired = trigger_events(conn, campaign, list(ids), at) if campaign.trigger is not None else {}
    present = [cid for cid in ids if cid in people]
    named = _named_products(*(last[cid] for cid in present), *(matched[cid] for cid in present), fired)
    batch = (shop or Shop(at)).batch(conn, present, named)
    return {
        cid: {
            "customer": people[cid],
            "campaign": campaign_info,
            "coupons": (coupons or {}).get(cid, {}),
            "at": at,
            "last": last[cid],
            "matched": matched[cid],
            **({"trigger": fired.get(cid)} if campaign.trigger is not None else {}),
            "products": batch.products,
            "recommend": batch.recommender(cid),
        }
        for cid in present
    }
