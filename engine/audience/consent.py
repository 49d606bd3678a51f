"""Who may be reached on which channel, as SQL the planner reads as columns (set-based, like the
audience): one clause per channel in a dispatch table, the campaign's topic, and the rule that an
anonymous profile is nobody to reach yet."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from engine.core.channels import Channel
from engine.core.fields import ANONYMOUS_PREFIX
from engine.store.hashing import address_hash_sql
from engine.store.tables import customers, subscriptions, suppressions


@dataclass(frozen=True)
class ConsentFacts:
    """What the store holds that changes the shape of the consent SQL, probed once per planning."""

    dialect: str = "sqlite"
    any_suppressed: bool = True  # False: the suppressions table is empty; no lookup per customer
    any_hashed: bool = False  # suppressions kept as hashes (`nudge forget`): compare hashes too
    double_opt_in: bool = False  # an email address counts only once confirmed


# NOT IN over an uncorrelated subquery, not a correlated NOT EXISTS: both databases read the list
# once into a hash (PostgreSQL's "hashed SubPlan", SQLite's ephemeral index), where a correlated
# lookup is planned per member — PostgreSQL then prices a million-member audience high enough to
# compile it with JIT and split it over parallel workers, each rebuilding the audience's hashes.
# The lists never hold NULL (key columns), so NOT IN cannot turn NULL on a member.


def _not_suppressed(address: sa.ColumnElement, facts: ConsentFacts) -> list[sa.ColumnElement[bool]]:
    if not facts.any_suppressed:
        return []
    listed = sa.select(suppressions.c.email).where(suppressions.c.email.is_not(None))
    found: list[sa.ColumnElement[bool]] = [address.not_in(listed)]
    if facts.any_hashed:
        found.append(address_hash_sql(address, facts.dialect).not_in(listed))
    return found


def email_consent(facts: ConsentFacts) -> sa.ColumnElement[bool]:
    """Opted in (and confirmed, under double opt-in), not unsubscribed, address not suppressed."""
    allowed: list[sa.ColumnElement[bool]] = [
        customers.c.email.is_not(None),
        customers.c.email_opt_in.is_(True),
        customers.c.unsubscribed_at.is_(None),
    ]
    if facts.double_opt_in:
        allowed.append(customers.c.email_confirmed_at.is_not(None))
    return sa.and_(*allowed, *_not_suppressed(sa.func.lower(customers.c.email), facts))


def sms_consent(facts: ConsentFacts) -> sa.ColumnElement[bool]:
    """Opted in to texts, no STOP since, number not suppressed (numbers are stored in E.164)."""
    allowed: list[sa.ColumnElement[bool]] = [
        customers.c.phone.is_not(None),
        customers.c.sms_opt_in.is_(True),
        customers.c.sms_unsubscribed_at.is_(None),
    ]
    return sa.and_(*allowed, *_not_suppressed(customers.c.phone, facts))


def webhook_consent(facts: ConsentFacts) -> sa.ColumnElement[bool]:
    """A webhook reaches the shop's own systems (a CRM, a chat room), not an address of the
    customer's: only the topic and the anonymous rule apply."""
    return sa.true()


CHANNEL_CONSENT: dict[Channel, Callable[[ConsentFacts], sa.ColumnElement[bool]]] = {
    Channel.EMAIL: email_consent,
    Channel.SMS: sms_consent,
    Channel.WEBHOOK: webhook_consent,
}

# What a refused channel's skipped ledger row says.
REFUSED: dict[Channel, str] = {
    Channel.EMAIL: "no email consent (opt-in, unsubscribe or suppression)",
    Channel.SMS: "no SMS consent (opt-in, STOP or suppression)",
    Channel.WEBHOOK: "not reachable by webhook",
}


def named() -> sa.ColumnElement[bool]:
    """Not an anonymous profile (anon:ID): nobody is there to reach until an alias names them."""
    return sa.func.substr(customers.c.id, 1, len(ANONYMOUS_PREFIX)) != ANONYMOUS_PREFIX


def in_topic(topic: str) -> sa.ColumnElement[bool]:
    """Has not left the topic (no row: subscribed)."""
    left = sa.select(subscriptions.c.customer_id).where(
        subscriptions.c.topic == topic,
        subscriptions.c.subscribed.is_(False),
        subscriptions.c.customer_id.is_not(None),
    )
    return customers.c.id.not_in(left)


def channel_consent(channel: Channel, facts: ConsentFacts, topic: str | None) -> sa.ColumnElement[bool]:
    """May this customer get this campaign's message on `channel`? `topic` None: a required topic
    (order and account service), which nobody can leave."""
    parts = [named(), CHANNEL_CONSENT[channel](facts)]
    if topic is not None:
        parts.append(in_topic(topic))
    return sa.and_(*parts)


def consent_clause(dialect: str = "sqlite", hashed: bool = False, any_suppressed: bool = True) -> sa.ColumnElement:
    """May this customer be emailed (channel consent only, no topic)? For readers outside the planner."""
    return email_consent(ConsentFacts(dialect=dialect, any_suppressed=any_suppressed, any_hashed=hashed))


def consented(channels: tuple[Channel, ...], consents: tuple) -> tuple[Channel, ...]:
    return tuple(c for c, ok in zip(channels, consents, strict=True) if ok)


def refused_channels(
    channels: tuple[Channel, ...], consents: tuple, reached: tuple[Channel, ...], capped: Callable[[Channel], str]
) -> tuple:
    """The channels a targeted customer does not get, with the reason their ledger row is skipped
    (`capped` words a frequency cap's)."""
    if len(reached) == len(channels):  # everyone's case, and a campaign without messages
        return ()
    refused = []
    for channel, ok in zip(channels, consents, strict=True):
        if channel not in reached:
            refused.append((channel, REFUSED[channel] if not ok else capped(channel)))
    return tuple(refused)
