"""A customer's choice per subscription topic, in the `subscriptions` table: no row means
subscribed. Every real change is appended to the consent log in the same transaction, so the log
never says what the table does not (and a re-sent form that changes nothing logs nothing).

Topic names come in as plain strings: which topics exist and which are required is config's
business (engine.delivery.preferences), so importers and the preference page share this."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.channels import ConsentChange
from engine.core.clock import naive_utc
from engine.store.consent import ConsentEntry, append, as_text
from engine.store.db import dialect_insert
from engine.store.tables import subscriptions


def choices(conn: Connection, customer_id: str, topics: Iterable[str]) -> dict[str, bool]:
    """Each of `topics` (in their order) with the customer's choice; a topic never chosen is subscribed."""
    names = list(topics)
    stored = dict(
        conn.execute(
            sa.select(subscriptions.c.topic, subscriptions.c.subscribed).where(
                subscriptions.c.customer_id == customer_id, subscriptions.c.topic.in_(names)
            )
        ).all()
    )
    return {name: bool(stored.get(name, True)) for name in names}


def set_choices(
    conn: Connection, customer_id: str, wanted: Mapping[str, bool], source: str, at: datetime
) -> list[ConsentEntry]:
    """Store these choices (upsert) and log each one that differs from before; returns the entries
    logged. Call inside the caller's transaction."""
    before = choices(conn, customer_id, wanted)
    changed = {topic: value for topic, value in wanted.items() if before[topic] != value}
    if not changed:
        return []
    insert = dialect_insert(conn.dialect.name, subscriptions)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[subscriptions.c.customer_id, subscriptions.c.topic],
            set_={"subscribed": insert.excluded.subscribed, "updated_at": insert.excluded.updated_at},
        ),
        [
            {"customer_id": customer_id, "topic": topic, "subscribed": value, "updated_at": naive_utc(at)}
            for topic, value in changed.items()
        ],
    )
    entries = [
        ConsentEntry(
            customer_id=customer_id,
            change=ConsentChange.TOPIC,
            source=source,
            old=as_text(before[topic]),
            new=as_text(value),
            topic=topic,
        )
        for topic, value in changed.items()
    ]
    append(conn, entries, naive_utc(at))
    return entries
