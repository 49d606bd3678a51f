"""Anonymous profiles and alias. A message with an anonymousId and no userId is stored under the
customer `anon:ID` (engine/ingest/segment.py): no address, no consent, and no campaign reaches it
(engine/audience/planner.py). `alias` (previousId → userId) says who that visitor is: the profile's
events move to the customer and the profile is deleted, in the request's transaction.

Deleted rather than marked merged: it never held an address or consent, its traits fill the
customer's empty fields here, and nothing else points at it once its events have moved; a kept row
would stay in every audience as a customer nobody can reach. The same anonymousId sending again
later (another tab still open) starts a new profile, which a later alias merges the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from engine.core.clock import naive_utc
from engine.ingest.importer import create_missing_customers, sqlite_write_lock
from engine.store import Store
from engine.store.privacy import forget_customer, forgotten_among
from engine.store.tables import customer_metrics, customers, events

# What an anonymous profile's traits may fill where the customer has nothing; never an address or
# consent (an anonymous identify does not store them: engine/ingest/segment.py).
FILLED = (
    "first_name",
    "last_name",
    "birthday",
    "birth_month",
    "birth_day",
    "country",
    "region",
    "city",
    "locale",
    "timezone",
    "signed_up_at",
)


@dataclass
class Merged:
    profiles: int = 0  # anonymous profiles merged (0: there was none, e.g. a retried alias)
    created: int = 0  # customers created for the alias's userId


def merge_anonymous(conn: Connection, store: Store, anonymous: str, user: str, now: datetime) -> Merged:
    """Merge the anonymous profile into the customer `user` (created if the store has not seen
    them): its events become theirs, its traits fill what the customer lacks, and the profile is
    deleted. No such profile (never seen, or already merged) changes nothing."""
    # A request storing events for this profile meanwhile waits for this transaction (PostgreSQL:
    # FOR UPDATE here against importer._known_customers' FOR KEY SHARE; SQLite: the write lock,
    # which both take before reading), then finds the profile gone and creates it again.
    if store.is_sqlite:
        sqlite_write_lock(conn)
    found = sa.select(customers).where(customers.c.id == anonymous).with_for_update()
    profile = conn.execute(found).one_or_none()
    if profile is None:
        return Merged()
    if forgotten_among(conn, {user}):
        # The customer was erased (nudge forget): what was anonymous is now known to be theirs.
        forget_customer(conn, anonymous, now, consent_source=None)  # a profile never holds consent
        return Merged(profiles=1)
    merged = Merged(profiles=1, created=create_missing_customers(conn, store, {user}, now))
    _fill(conn, store, profile, user, now)
    conn.execute(sa.update(events).where(events.c.customer_id == anonymous).values(customer_id=user))
    conn.execute(sa.delete(customer_metrics).where(customer_metrics.c.customer_id == anonymous))
    conn.execute(sa.delete(customers).where(customers.c.id == anonymous))
    return merged


def _fill(conn: Connection, store: Store, profile: Row, user: str, now: datetime) -> None:
    """The profile's fields where the customer's are empty, its attributes under the customer's
    (the customer's own win): evaluated in the UPDATE, so a concurrent identify is not undone."""
    mine = profile._mapping
    values: dict[str, Any] = {
        name: sa.func.coalesce(customers.c[name], sa.bindparam(None, mine[name], type_=customers.c[name].type))
        for name in FILLED
        if mine[name] is not None
    }
    if mine["attributes"]:
        theirs = sa.bindparam(None, mine["attributes"], type_=customers.c.attributes.type)
        values["attributes"] = (
            theirs.op("||")(customers.c.attributes)
            if store.dialect == "postgresql"
            else sa.func.json_patch(theirs, customers.c.attributes)
        )
    if values:
        values["updated_at"] = naive_utc(now)
        conn.execute(sa.update(customers).where(customers.c.id == user).values(values))
