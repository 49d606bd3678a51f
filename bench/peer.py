"""The peer: a generic per-customer rule engine. One streaming pass over customers and their
events (merge-joined by id), every rule evaluated in Python for each customer. The evaluator is
the pure-Python reference the test suite checks the SQL compiler against."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from engine.store.tables import customers, events, suppressions
from tests.support.reference import matches


def _utc(value):
    return value.replace(tzinfo=timezone.utc) if value is not None else None


def evaluate(store, ws, at: datetime) -> dict[str, list[str]]:
    campaigns = ws.select()
    found: dict[str, list[str]] = {c.campaign: [] for c in campaigns}
    naive = at.astimezone(timezone.utc).replace(tzinfo=None)
    with store.engine.connect() as people_conn, store.engine.connect() as events_conn:
        blocked = set(people_conn.execute(sa.select(suppressions.c.email)).scalars())
        people = people_conn.execution_options(yield_per=5000).execute(sa.select(customers).order_by(customers.c.id))
        history = events_conn.execution_options(yield_per=20000).execute(
            sa.select(events.c.customer_id, events.c.type, events.c.occurred_at, events.c.properties, events.c.pk)
            .where(events.c.occurred_at <= naive)
            .order_by(events.c.customer_id)
        )
        pending = next(history, None)
        for person in people:
            mine = []
            while pending is not None and pending.customer_id < person.id:
                pending = next(history, None)
            while pending is not None and pending.customer_id == person.id:
                mine.append(
                    {
                        "type": pending.type,
                        "occurred_at": _utc(pending.occurred_at),
                        "properties": pending.properties or {},
                        "seq": pending.pk,
                    }
                )
                pending = next(history, None)
            customer = {**dict(person._mapping), "attributes": person.attributes or {}}
            consent = (
                person.email is not None
                and person.email_opt_in
                and person.unsubscribed_at is None
                and person.email.lower() not in blocked
            )
            for campaign in campaigns:
                if campaign.sends_email and not consent:
                    continue
                if matches(campaign.audience, customer, mine, at, ws.config.timezone, ws.segments):
                    found[campaign.campaign].append(person.id)
    return found
