"""Why the planner excluded one customer: the facts behind `no_consent`, `cooldown`, `held_out`
and `frequency_cap`, in words a marketer can act on (times in the config's zone)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.clock import aware_utc, naive_utc
from engine.core.durations import format_duration
from engine.core.fields import ANONYMOUS_PREFIX
from engine.core.status import CAP_STATES, COOLDOWN_STATES, Outcome
from engine.rules.campaign import Campaign
from engine.rules.config import Config
from engine.store.tables import customers, deliveries, suppressions


def _when(moment: datetime | None, zone: str) -> str:
    if moment is None:
        return "an unknown time"
    return aware_utc(moment).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _no_consent(conn: Connection, customer_id: str, config: Config) -> str:
    person = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).one()
    if customer_id.startswith(ANONYMOUS_PREFIX):
        return "an anonymous profile (anon:): nobody to reach until an alias names the customer"
    if not person.email:
        return "no email address on file"
    if person.unsubscribed_at is not None:
        return f"unsubscribed on {_when(person.unsubscribed_at, config.timezone)}"
    blocked = conn.execute(sa.select(suppressions).where(suppressions.c.email == person.email.lower())).one_or_none()
    if blocked is not None:
        source = f" (from {blocked.source})" if blocked.source else ""
        return f"address suppressed: {blocked.reason}{source} on {_when(blocked.created_at, config.timezone)}"
    return "has not opted in to email (email_opt_in is false)"


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


def _capped(conn: Connection, customer_id: str, config: Config, at: datetime) -> str:
    cap = config.limits.frequency_cap
    if cap is None:
        return "frequency cap"
    moment = naive_utc(at)
    rows = conn.execute(
        sa.select(deliveries.c.campaign, deliveries.c.occurrence, deliveries.c.status)
        .where(
            deliveries.c.customer_id == customer_id,
            deliveries.c.counts_toward_cap.is_(True),
            deliveries.c.status.in_(CAP_STATES),
            deliveries.c.occurrence > moment - cap.per,
            deliveries.c.occurrence <= moment,
        )
        .order_by(deliveries.c.occurrence)
    ).all()
    used = "; ".join(f"{r.campaign} at {_when(r.occurrence, config.timezone)} ({r.status})" for r in rows)
    limit = f"at most {cap.max} per {format_duration(cap.per)}"
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
        return _no_consent(conn, customer_id, config)
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
        return _capped(conn, customer_id, config, at)
    if outcome == Outcome.WHEN_FALSE:
        return "this journey step's `when` does not hold: the step is recorded skipped and the journey goes on"
    return None
