"""The ledger and one customer's history, for operators and support staff: `nudge deliveries`
(who got what, when, status and reason) and `nudge customer ID` (events, messages, coupons,
tasks, suppressions, topic choices and the consent log, in one timeline)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from engine.audience.journey import journey_state
from engine.core.clock import iso_utc, naive_utc
from engine.core.errors import Problem, UserInputError
from engine.messages.context import customer_dict
from engine.rules.campaign import Campaign
from engine.store.privacy import CONSENT_COLUMNS, consent_log_of, subscriptions_of
from engine.store.tables import coupons, customers, deliveries, events, suppressions, tasks

# `channel` last: a script that read the CSV's columns by position before channels existed reads on.
# A campaign on several channels has a row per channel: without it the rows cannot be told apart.
DELIVERY_COLUMNS = ("id", "campaign", "customer_id", "occurrence", "status", "reason", "variant", "sent_at", "channel")
RECENT_EVENTS = 200


def _plain(row: Any, names: Sequence[str]) -> dict[str, Any]:
    return {n: iso_utc(v) if isinstance(v, datetime) else v for n, v in ((n, getattr(row, n)) for n in names)}


def of_campaign(campaign: str) -> sa.ColumnElement[bool]:
    """Ledger rows of a campaign, or of every step of a journey named without its step."""
    return sa.or_(deliveries.c.campaign == campaign, deliveries.c.campaign.startswith(f"{campaign}/", autoescape=True))


def campaigns_in_ledger(conn: Connection) -> list[str]:
    return list(conn.execute(sa.select(deliveries.c.campaign).distinct().order_by(deliveries.c.campaign)).scalars())


def list_deliveries(
    conn: Connection,
    campaign: str | None = None,
    status: str | None = None,
    since: timedelta | None = None,
    now: datetime | None = None,
    limit: int | None = None,
    customer_id: str | None = None,
) -> list[dict[str, Any]]:
    """Ledger rows, newest occurrence first; filters by campaign, status, customer and how recent."""
    query = sa.select(*(deliveries.c[n] for n in DELIVERY_COLUMNS)).order_by(
        deliveries.c.occurrence.desc(), deliveries.c.id.desc()
    )
    if campaign:
        query = query.where(of_campaign(campaign))
    if status:
        query = query.where(deliveries.c.status == status)
    if customer_id:
        query = query.where(deliveries.c.customer_id == customer_id)
    if since is not None and now is not None:
        query = query.where(deliveries.c.occurrence > naive_utc(now) - since)
    if limit:
        query = query.limit(limit)
    return [_plain(row, DELIVERY_COLUMNS) for row in conn.execute(query)]


def customer_timeline(
    conn: Connection,
    customer_id: str,
    journeys: Sequence[Campaign] = (),
    zone: str = "UTC",
    topics: Sequence[str] = (),
) -> dict[str, Any]:
    """Everything support staff need about one customer, newest first, where they are in each
    journey they have entered, and their choice for each of `topics` (config.yaml's)."""
    person = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).one_or_none()
    if person is None:
        raise UserInputError([Problem("<customer>", None, None, f"no customer with id {customer_id!r} in the store")])
    recent = conn.execute(
        sa.select(events.c.type, events.c.occurred_at, events.c.properties)
        .where(events.c.customer_id == customer_id)
        .order_by(events.c.occurred_at.desc(), events.c.pk.desc())
        .limit(RECENT_EVENTS)
    )
    messages = list_deliveries(conn, customer_id=customer_id)
    issued = conn.execute(
        sa.select(coupons.c.code, coupons.c.name, coupons.c.campaign, coupons.c.expires_at)
        .where(coupons.c.customer_id == customer_id)
        .order_by(coupons.c.created_at.desc())
    )
    staff = conn.execute(
        sa.select(tasks.c.id, tasks.c.queue, tasks.c.title, tasks.c.status, tasks.c.due_at, tasks.c.handoff)
        .where(tasks.c.customer_id == customer_id)
        .order_by(tasks.c.created_at.desc())
    )
    return {
        "customer": _profile(person),
        "events": [
            {"type": r.type, "occurred_at": iso_utc(r.occurred_at), "properties": dict(r.properties or {})}
            for r in recent
        ],
        "messages": messages,
        "coupons": [_plain(r, ("code", "name", "campaign", "expires_at")) for r in issued],
        "tasks": [_plain(r, ("id", "queue", "title", "status", "due_at", "handoff")) for r in staff],
        "suppressions": _suppressions(conn, person.email),
        "journeys": _positions(conn, customer_id, journeys, zone),
        "subscriptions": _choices(conn, customer_id, topics),
        "consent_log": [_plain(r, CONSENT_COLUMNS) for r in reversed(conn.execute(consent_log_of(customer_id)).all())],
    }


def _profile(person: Row) -> dict[str, Any]:
    profile = {k: iso_utc(v) if isinstance(v, datetime) else v for k, v in customer_dict(person).items()}
    for name in ("sms_opt_in", "sms_unsubscribed_at", "email_confirmed_at"):  # consent the rules do not read
        value = person._mapping[name]
        profile.setdefault(name, iso_utc(value) if isinstance(value, datetime) else value)
    return profile


def _suppressions(conn: Connection, email: str | None) -> list[dict[str, Any]]:
    if not email:
        return []
    query = sa.select(suppressions.c.reason, suppressions.c.source, suppressions.c.created_at)
    return [
        _plain(row, ("reason", "source", "created_at"))
        for row in conn.execute(query.where(suppressions.c.email == email.lower()))
    ]


def _choices(conn: Connection, customer_id: str, topics: Sequence[str]) -> list[dict[str, Any]]:
    """Each topic with the customer's choice: `chosen` false where they made none (subscribed, the
    default). A stored choice for a topic config no longer names is shown too, last."""
    stored = {r.topic: r for r in conn.execute(subscriptions_of(customer_id))}
    shown = []
    for topic in [*topics, *(t for t in stored if t not in topics)]:
        row = stored.get(topic)
        shown.append(
            {
                "topic": topic,
                "subscribed": True if row is None else bool(row.subscribed),
                "chosen": row is not None,
                "updated_at": None if row is None else iso_utc(row.updated_at),
            }
        )
    return shown


def _positions(conn: Connection, customer_id: str, journeys: Sequence[Campaign], zone: str) -> list[dict[str, Any]]:
    now = datetime.now(timezone.utc)
    found = []
    for journey in journeys:
        state = journey_state(conn, journey, zone, now, customer_id)
        if state.entered_at is not None:
            found.append({**state.as_json(), "summary": state.summary()})
    return found
