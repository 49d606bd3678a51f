"""Why the planner excluded one customer: the facts behind `no_consent`, `cooldown`, `held_out`
and `frequency_cap`, in words a marketer can act on (times in the config's zone)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.channels import Channel
from engine.core.clock import aware_utc, naive_utc
from engine.core.durations import format_duration
from engine.core.fields import ANONYMOUS_PREFIX
from engine.core.status import CAP_STATES, COOLDOWN_STATES, Outcome
from engine.rules.campaign import Campaign
from engine.rules.config import Config
from engine.store.tables import customers, deliveries, subscriptions, suppressions


def _when(moment: datetime | None, zone: str) -> str:
    if moment is None:
        return "an unknown time"
    return aware_utc(moment).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _suppressed(conn: Connection, address: str, config: Config) -> str | None:
    blocked = conn.execute(sa.select(suppressions).where(suppressions.c.email == address)).one_or_none()
    if blocked is None:
        return None
    source = f" (from {blocked.source})" if blocked.source else ""
    return f"suppressed: {blocked.reason}{source} on {_when(blocked.created_at, config.timezone)}"


def _no_email(conn: Connection, person: Any, config: Config) -> str:
    if not person.email:
        return "no email address on file"
    if person.unsubscribed_at is not None:
        return f"unsubscribed on {_when(person.unsubscribed_at, config.timezone)}"
    blocked = _suppressed(conn, person.email.lower(), config)
    if blocked is not None:
        return f"address {blocked}"
    if not person.email_opt_in:
        return "has not opted in to email (email_opt_in is false)"
    return "has not confirmed their address yet (double opt-in)"


def _no_sms(conn: Connection, person: Any, config: Config) -> str:
    if not person.phone:
        return "no phone number on file"
    if person.sms_unsubscribed_at is not None:
        return f"replied STOP (or unsubscribed from texts) on {_when(person.sms_unsubscribed_at, config.timezone)}"
    blocked = _suppressed(conn, person.phone, config)
    if blocked is not None:
        return f"number {blocked}"
    return "has not opted in to text messages (sms_opt_in is false)"


def _no_webhook(conn: Connection, person: Any, config: Config) -> str:
    return "not reachable by webhook"


NO_CONSENT: dict[Channel, Callable[[Connection, Any, Config], str]] = {
    Channel.EMAIL: _no_email,
    Channel.SMS: _no_sms,
    Channel.WEBHOOK: _no_webhook,
}


def refused_because(conn: Connection, customer_id: str, channel: Channel, config: Config, planned: str) -> str:
    """Why a targeted customer does not get the campaign's message on `channel`: the consent fact
    behind it, or the planner's own words (a frequency cap)."""
    if planned.startswith("frequency cap"):
        return planned
    person = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).one()
    return NO_CONSENT[channel](conn, person, config)


def _no_consent(conn: Connection, customer_id: str, campaign: Campaign, config: Config) -> str:
    if customer_id.startswith(ANONYMOUS_PREFIX):
        return "an anonymous profile (anon:): nobody to reach until an alias names the customer"
    person = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).one()
    topic = campaign.topic or config.default_topic
    left = conn.execute(
        sa.select(subscriptions.c.updated_at).where(
            subscriptions.c.customer_id == customer_id,
            subscriptions.c.topic == topic,
            subscriptions.c.subscribed.is_(False),
        )
    ).scalar()
    if left is not None and not config.topic_required(topic):
        return f"left the topic {topic!r} on {_when(left, config.timezone)}"
    reasons = [NO_CONSENT[channel](conn, person, config) for channel in campaign.channels or (Channel.EMAIL,)]
    if len(campaign.channels) <= 1:
        return reasons[0]
    return "; ".join(f"{channel}: {why}" for channel, why in zip(campaign.channels, reasons, strict=True))


def _cooldown(conn: Connection, customer_id: str, campaign: Campaign, config: Config, at: datetime) -> str:
    moment = naive_utc(at)
    row = conn.execute(
        sa.select(deliveries.c.occurrence, deliveries.c.status)
        .where(
            deliveries.c.campaign == campaign.campaign,
            deliveries.c.customer_id == customer_id,
            deliveries.c.status.in_(COOLDOWN_STATES),
            deliveries.c.occurrence > moment - campaign.cooldown,
            deliveries.c.occurrence <= moment,
        )
        .order_by(deliveries.c.occurrence.desc())
        .limit(1)
    ).one_or_none()
    if row is None:
        return f"within the {format_duration(campaign.cooldown)} cooldown"
    until = _when(row.occurrence + campaign.cooldown, config.timezone)
    return (
        f"this campaign's occurrence of {_when(row.occurrence, config.timezone)} ({row.status}); "
        f"cooldown {format_duration(campaign.cooldown)}, until {until}"
    )


def _capped(conn: Connection, customer_id: str, campaign: Campaign, config: Config, at: datetime) -> str:
    caps = config.limits.frequency_cap
    if caps is None:
        return "frequency cap"
    limits = [(str(c), cap) for c in campaign.channels if (cap := caps.of(c)) is not None]
    limits += [("all", caps.all)] if caps.all is not None else []
    return "; ".join(_cap_use(conn, customer_id, key, cap, config, at) for key, cap in limits) or "frequency cap"


def _cap_use(conn: Connection, customer_id: str, key: str, cap: Any, config: Config, at: datetime) -> str:
    moment = naive_utc(at)
    query = (
        sa.select(deliveries.c.campaign, deliveries.c.occurrence, deliveries.c.status)
        .where(
            deliveries.c.customer_id == customer_id,
            deliveries.c.counts_toward_cap.is_(True),
            deliveries.c.status.in_(CAP_STATES),
            deliveries.c.occurrence > moment - cap.per,
            deliveries.c.occurrence <= moment,
        )
        .order_by(deliveries.c.occurrence)
    )
    rows = conn.execute(query if key == "all" else query.where(deliveries.c.channel == key)).all()
    used = "; ".join(f"{r.campaign} at {_when(r.occurrence, config.timezone)} ({r.status})" for r in rows)
    # A cap of email alone (the old `{max, per}`) reads as before; with several, name the one that stopped it.
    caps = config.limits.frequency_cap
    alone = caps is not None and caps.sms is None and caps.webhook is None and caps.all is None
    scope = "" if key == "email" and alone else f" ({key} messages)"
    limit = f"at most {cap.max} per {format_duration(cap.per)}{scope}"
    if not rows:
        return f"{limit}: used by higher-priority campaigns planned in the same run"
    return f"{limit}, already used by {used}"


def reason(
    conn: Connection, campaign: Campaign, config: Config, customer_id: str, outcome: str, at: datetime
) -> str | None:
    """A sentence behind an exclusion; None for a targeted customer or one outside the audience."""
    if outcome == Outcome.GLOBAL_HOLDOUT:
        share = f"{config.limits.global_holdout:g}%"
        return f"in the programme's {share} global control group: never contacted by any campaign"
    if outcome == Outcome.NO_CONSENT:
        return _no_consent(conn, customer_id, campaign, config)
    if outcome == Outcome.COOLDOWN:
        return _cooldown(conn, customer_id, campaign, config, at)
    if outcome == Outcome.HELD_OUT:
        return f"in this campaign's {campaign.holdout:g}% control group (a stable hash of campaign and customer)"
    if outcome == Outcome.EXCLUSIVE:
        window = config.limits.exclusive.get(campaign.exclusive or "")
        span = format_duration(window) if window else "its window"
        return (
            f"another campaign of the exclusive group {campaign.exclusive!r} reaches them within {span} "
            "(one of the group at a time; the higher priority wins)"
        )
    if outcome == Outcome.FREQUENCY_CAP:
        return _capped(conn, customer_id, campaign, config, at)
    if outcome == Outcome.WHEN_FALSE:
        return "this journey step's `when` does not hold: the step is recorded skipped and the journey goes on"
    return None
