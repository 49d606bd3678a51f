"""What a customer chooses through the links in our email, as config.yaml's topics define it: their
choices per topic, leaving one topic, leaving everything, coming back, confirming their address
(double opt-in). Each function runs in the caller's transaction and appends to the consent log
what it changed, with the source (`preference page`, `one-click`, `confirmation`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.channels import Channel, ConsentChange, ConsentSource
from engine.core.clock import naive_utc
from engine.delivery.suppressions import suppress
from engine.rules.channels_config import IMPLICIT_TOPIC, Topic
from engine.store.consent import ConsentEntry, append, as_text
from engine.store.subscriptions import choices, set_choices
from engine.store.tables import customers, suppressions

# The suppression reason an unsubscribe records (engine.delivery.suppressions): the one a customer
# may lift by choosing topics again. Bounces and spam reports are never lifted from a web page.
UNSUBSCRIBE_REASON = "unsubscribe"


@dataclass(frozen=True)
class Reader:
    """The customer a link names, as the preference and confirmation pages need them."""

    id: str
    email: str | None
    locale: str | None
    unsubscribed_at: datetime | None
    email_confirmed_at: datetime | None


def find_customer(conn: Connection, customer_id: str) -> Reader | None:
    row = conn.execute(
        sa.select(
            customers.c.id,
            customers.c.email,
            customers.c.locale,
            customers.c.unsubscribed_at,
            customers.c.email_confirmed_at,
        ).where(customers.c.id == customer_id)
    ).first()
    return Reader(*row) if row is not None else None


def topic_names(topics: Mapping[str, Topic]) -> list[str]:
    """The topics a customer can be in: config's, in order, or the one implicit topic without any."""
    return list(topics) or [IMPLICIT_TOPIC]


def optional_topics(topics: Mapping[str, Topic]) -> list[str]:
    """The topics a customer may leave (required ones, order and account service, cannot be left)."""
    return [name for name in topic_names(topics) if not (name in topics and topics[name].required)]


def current_choices(conn: Connection, topics: Mapping[str, Topic], reader: Reader) -> dict[str, bool]:
    """What the customer gets now, per topic: a customer unsubscribed from everything is in no
    optional topic whatever their stored choices say (that is what they receive); required topics
    are always on."""
    stored = choices(conn, reader.id, topic_names(topics))
    leavable = set(optional_topics(topics))
    return {
        name: (value and reader.unsubscribed_at is None) if name in leavable else True for name, value in stored.items()
    }


def save_choices(
    conn: Connection, topics: Mapping[str, Topic], reader: Reader, chosen: Collection[str], source: str, at: datetime
) -> list[ConsentEntry]:
    """The optional topics in `chosen` on, the others off (unknown and required names are ignored).
    A customer who had unsubscribed from everything and now chooses a topic is back on email."""
    wanted = {name: name in chosen for name in optional_topics(topics)}
    entries = set_choices(conn, reader.id, wanted, source, at)
    if reader.unsubscribed_at is not None and any(wanted.values()):
        entries += _rejoin(conn, reader, source, at)
    return entries


def leave_topic(
    conn: Connection, topics: Mapping[str, Topic], customer_id: str, topic: str, source: str, at: datetime
) -> list[ConsentEntry]:
    """Leave one optional topic; a required or unknown one is refused with ValueError."""
    if topic not in optional_topics(topics):
        raise ValueError(f"topic {topic!r} cannot be left")
    return set_choices(conn, customer_id, {topic: False}, source, at)


def leave_everything(
    conn: Connection,
    topics: Mapping[str, Topic],
    customer_id: str,
    address: str,
    campaign: str | None,
    source: str,
    at: datetime,
) -> list[ConsentEntry]:
    """Every optional topic off, the customer unsubscribed and the address suppressed, as an
    unsubscribe always did; idempotent (a second call logs nothing)."""
    topics_left = set_choices(conn, customer_id, dict.fromkeys(optional_topics(topics), False), source, at)
    entries = []
    marked = conn.execute(
        sa.update(customers)
        .where(customers.c.id == customer_id, customers.c.unsubscribed_at.is_(None))
        .values(unsubscribed_at=naive_utc(at))
    ).rowcount
    if marked:
        entries.append(_entry(customer_id, ConsentChange.UNSUBSCRIBE, source, None, as_text(naive_utc(at)), address))
    if address and suppress(conn, [address], UNSUBSCRIBE_REASON, campaign, at):
        entries.append(_entry(customer_id, ConsentChange.SUPPRESSION, source, None, UNSUBSCRIBE_REASON, address))
    append(conn, entries, naive_utc(at))
    return topics_left + entries


def confirm_address(conn: Connection, customer_id: str, address: str, at: datetime) -> bool:
    """Double opt-in: the customer confirmed `address`. False when it was already confirmed, or the
    customer's address is another one now (a link to an old address confirms nothing)."""
    confirmed = conn.execute(
        sa.update(customers)
        .where(
            customers.c.id == customer_id,
            customers.c.email_confirmed_at.is_(None),
            sa.func.lower(customers.c.email) == address.strip().lower(),
        )
        .values(email_confirmed_at=naive_utc(at))
    ).rowcount
    if confirmed:
        entry = _entry(customer_id, ConsentChange.CONFIRMATION, ConsentSource.CONFIRMATION, None, "true", address)
        append(conn, [entry], naive_utc(at))
    return bool(confirmed)


def _rejoin(conn: Connection, reader: Reader, source: str, at: datetime) -> list[ConsentEntry]:
    """Clear an unsubscribe the customer made, and lift the address's unsubscribe suppression."""
    entries = []
    conn.execute(sa.update(customers).where(customers.c.id == reader.id).values(unsubscribed_at=None))
    entries.append(
        _entry(reader.id, ConsentChange.UNSUBSCRIBE, source, as_text(reader.unsubscribed_at), None, reader.email)
    )
    if reader.email:
        lifted = conn.execute(
            sa.delete(suppressions).where(
                suppressions.c.email == reader.email.strip().lower(), suppressions.c.reason == UNSUBSCRIBE_REASON
            )
        ).rowcount
        if lifted:
            entries.append(_entry(reader.id, ConsentChange.SUPPRESSION, source, UNSUBSCRIBE_REASON, None, reader.email))
    append(conn, entries, naive_utc(at))
    return entries


def _entry(
    customer_id: str, change: ConsentChange, source: str, old: str | None, new: str | None, address: str | None
) -> ConsentEntry:
    return ConsentEntry(customer_id, change, source, old, new, channel=Channel.EMAIL, address=address)
