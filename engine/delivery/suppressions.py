"""Addresses that must never be emailed again: unsubscribes, bounces, spam reports, manual blocks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.channels import Channel, ConsentChange
from engine.core.clock import naive_utc
from engine.store.consent import ConsentEntry, append
from engine.store.db import dialect_insert
from engine.store.hashing import address_hash
from engine.store.tables import customers, suppressions


def suppress(
    conn: Connection,
    addresses: Iterable[str],
    reason: str,
    source: str | None,
    now: datetime,
    consent_source: str | None = None,
) -> int:
    """Add addresses (idempotent: the first reason recorded stays). Returns how many were new.
    `consent_source`: log each new one in the consent log of the customers it belongs to."""
    rows = [
        {"email": a.strip().lower(), "reason": reason, "source": source, "created_at": naive_utc(now)}
        for a in {a.strip().lower() for a in addresses if a and a.strip()}
    ]
    if not rows:
        return 0
    inserted = conn.execute(
        dialect_insert(conn.dialect.name, suppressions)
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(suppressions.c.email),
        rows,
    ).all()
    if consent_source is not None:
        _log(conn, {email: (None, reason) for (email,) in inserted}, consent_source, now)
    return len(inserted)


def unsuppress(
    conn: Connection, addresses: Iterable[str], consent_source: str | None = None, now: datetime | None = None
) -> int:
    """Lift suppressions; `consent_source` (with `now`): log each lifted one as suppress() does.
    Returns how many were lifted."""
    wanted = [a.strip().lower() for a in addresses]
    statement = sa.delete(suppressions).where(suppressions.c.email.in_(wanted))
    removed = conn.execute(statement.returning(suppressions.c.email, suppressions.c.reason)).all()
    if consent_source is not None:
        if now is None:
            raise TypeError("unsuppress: a consent_source needs the instant, now")
        _log(conn, {email: (reason, None) for email, reason in removed}, consent_source, now)
    return len(removed)


def _log(conn: Connection, changed: dict[str, tuple[str | None, str | None]], source: str, now: datetime) -> None:
    """Consent-log entries (old and new reason) for the customers these addresses or numbers
    are: an address nobody in the store has is in the suppressions table alone."""
    if not changed:
        return
    owners = conn.execute(
        sa.select(customers.c.id, customers.c.email, customers.c.phone).where(
            sa.or_(customers.c.email.in_(sorted(changed)), customers.c.phone.in_(sorted(changed)))
        )
    ).all()
    entries = []
    for owner in owners:
        for address, channel in ((owner.email, Channel.EMAIL), (owner.phone, Channel.SMS)):
            if address is not None and address.lower() in changed:
                old, new = changed[address.lower()]
                entries.append(
                    ConsentEntry(owner.id, ConsentChange.SUPPRESSION, source, old, new, str(channel), None, address)
                )
    append(conn, entries, naive_utc(now))


def list_suppressions(conn: Connection) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in conn.execute(sa.select(suppressions).order_by(suppressions.c.created_at, suppressions.c.email))
    ]


def suppressed_among(conn: Connection, addresses: Iterable[str]) -> dict[str, str]:
    """Which of these addresses are suppressed, and why."""
    wanted = sorted({a.lower() for a in addresses if a})
    if not wanted:
        return {}
    # A forgotten customer's suppression is kept as a hash of the address (`nudge forget`).
    hashed = {address_hash(a): a for a in wanted}
    found = conn.execute(
        sa.select(suppressions.c.email, suppressions.c.reason).where(suppressions.c.email.in_(wanted + sorted(hashed)))
    ).all()
    return {hashed.get(email, email): reason for email, reason in found}


def unsubscribe_customer(conn: Connection, customer_id: str, email: str, campaign: str | None, now: datetime) -> None:
    """One-click unsubscribe: the address is suppressed and the customer marked unsubscribed."""
    suppress(conn, [email], "unsubscribe", campaign, now)
    conn.execute(
        sa.update(customers)
        .where(customers.c.id == customer_id, customers.c.unsubscribed_at.is_(None))
        .values(unsubscribed_at=naive_utc(now))
    )
