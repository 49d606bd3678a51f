"""Audience → exclusions in SPEC order → targets. The dry run and the run both use this."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.audience.caps import ALL_CHANNELS, CapCheck
from engine.audience.compiler import EvalContext, compile_condition, store_timezones
from engine.audience.consent import ConsentFacts, channel_consent, consented, named, refused_channels
from engine.audience.trigger import triggered
from engine.core.channels import Channel
from engine.core.status import (
    CAP_STATES,
    COOLDOWN_STATES,
    EXCLUSION_OF,
    SKIPPING,
    DeliveryStatus,
    Exclusion,
    Outcome,
)
from engine.rules.campaign import Campaign
from engine.rules.channels_config import FrequencyCap
from engine.rules.config import Config
from engine.rules.journey import journey_of
from engine.store.tables import customers, deliveries, suppressions

STREAM_BATCH = 10_000


def holdout_test(campaign: str, percent: float) -> Callable[[str], bool] | None:
    """Deterministic control group: the same customer stays in or out across runs and machines.
    The test for one campaign, its constant parts computed once (it runs for every candidate)."""
    if percent <= 0:
        return None
    prefix, limit, sha256 = f"{campaign}\x1f".encode(), round(percent * 100), hashlib.sha256

    def held_out(customer_id: str) -> bool:
        return int.from_bytes(sha256(prefix + customer_id.encode()).digest()[:8], "big") % 10_000 < limit

    return held_out


def in_holdout(campaign: str, customer_id: str, percent: float) -> bool:
    test = holdout_test(campaign, percent)
    return test is not None and test(customer_id)


GLOBAL_SALT = "global-control-group"


def in_global_holdout(customer_id: str, percent: float) -> bool:
    """The programme's control group: one hash of the customer alone, so it is the same customers
    for every campaign, today and next year."""
    return in_holdout(GLOBAL_SALT, customer_id, percent)


def variant_for(campaign: str, customer_id: str, weights: list[tuple[str, float]]) -> str | None:
    """The customer's A/B variant: a stable hash of campaign and customer, salted apart from the
    holdout's so that who is held out says nothing about who gets which variant."""
    if not weights:
        return None
    digest = hashlib.sha256(f"variant\x1f{campaign}\x1f{customer_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 10_000
    edge = 0.0
    for name, weight in weights:
        edge += weight * 100
        if bucket < round(edge):
            return name
    return weights[-1][0]


class Classified(NamedTuple):
    customer_id: str
    outcome: Outcome
    email: str | None
    timezone: str | None
    phone: str | None = None
    # Targeted: the campaign's channels this customer gets a message on, in the campaign's order
    # (the first carries its coupons and tasks); `refused`: the others, with the reason.
    channels: tuple[Channel, ...] = ()
    refused: tuple[tuple[Channel, str], ...] = ()
    locale: str | None = None  # read only when the planner counts locales


@dataclass
class CampaignPlan:
    campaign: str
    matched: int = 0
    excluded: dict[Exclusion, int] = field(
        default_factory=lambda: {
            k: 0 for k in Exclusion if k not in (Exclusion.GLOBAL_HOLDOUT, Exclusion.WHEN_FALSE, Exclusion.EXCLUSIVE)
        }
    )
    targeted: list[str] = field(default_factory=list)
    held_out: list[str] = field(default_factory=list)
    variants: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # journey steps: recorded `skipped`, journey goes on
    channels: dict[str, int] = field(default_factory=dict)  # messages per channel to the targeted
    locales: Counter[str] = field(default_factory=Counter)  # targeted per locale they are served in
    # Targeted customers reached on only some of the campaign's channels, and which: what their
    # rendered sample shows (kept only for them, so a million fully reached cost nothing here).
    partial: dict[str, tuple[str, ...]] = field(default_factory=dict)
    journey: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "campaign": self.campaign,
            "matched": self.matched,
            "excluded": {str(k): v for k, v in self.excluded.items()},
            "targeted": len(self.targeted),
            "customers": sorted(self.targeted),
            "held_out": sorted(self.held_out),
            **({"locales": dict(sorted(self.locales.items()))} if self.locales else {}),
        }
        if self.variants:
            data["variants"] = dict(self.variants)
        if self.channels:
            data["channels"] = dict(self.channels)
        if self.journey is not None:
            data["journey"] = dict(self.journey)
            data["skipped"] = len(self.skipped)
        return data


@dataclass
class Planner:
    """Evaluates campaigns at one instant; remembers cap usage across the campaigns it plans."""

    conn: Connection
    config: Config
    segments: dict[str, Any]
    at: datetime
    # (customer, channel or "all") → messages planned here, across the campaigns of this planning.
    cap_used: Counter = field(default_factory=Counter)
    # Exclusive group → customers an earlier campaign planned here reaches: campaigns planned at one
    # instant see each other before anything is in the ledger (a dry run writes nothing).
    group_taken: dict[str, set[str]] = field(default_factory=dict)
    # Delivery plans look both ways in time: an occurrence already planned for a later instant
    # (a neighbouring `--at`, a daemon ahead of a catch-up) counts. A dry run replaying the past
    # looks back only, so it shows what that instant saw.
    lookahead: bool = False
    count_locales: bool = False  # the dry run's targeted per locale (reads customers.locale)
    _timezones: tuple[str, ...] | None = None
    _suppressed: tuple[bool, bool] | None = None  # are there suppressions; are some kept as hashes

    def context(self) -> EvalContext:
        if self._timezones is None:
            self._timezones = store_timezones(self.conn)
        return EvalContext(
            at=self.at,
            timezone=self.config.timezone,
            dialect=self.conn.dialect.name,
            timezones=self._timezones,
            segments=self.segments,
            metrics=self.config.metrics,
        )

    def _window(self, at: datetime, span: timedelta) -> tuple[Any, Any]:
        """Occurrences within `span` of `at`: looking back, or both ways when planning a delivery."""
        if self.lookahead:
            return deliveries.c.occurrence > at - span, deliveries.c.occurrence < at + span
        return deliveries.c.occurrence > at - span, deliveries.c.occurrence <= at

    def facts(self) -> ConsentFacts:
        """What shapes the consent SQL, probed once: hashing every address costs and most stores
        have no suppressions kept as hashes (`nudge forget`); a store without any suppression
        needs no lookup per customer."""
        if self._suppressed is None:
            rows = sa.select(suppressions.c.email).limit(1)
            hashed = rows.where(suppressions.c.email.like("sha256:%"))
            any_row = self.conn.execute(rows).first() is not None
            self._suppressed = (any_row, any_row and self.conn.execute(hashed).first() is not None)
        any_row, any_hashed = self._suppressed
        return ConsentFacts(
            dialect=self.conn.dialect.name,
            any_suppressed=any_row,
            any_hashed=any_hashed,
            double_opt_in=self.config.consent.double_opt_in,
        )

    def topic(self, campaign: Campaign) -> str | None:
        """The topic whose leavers this campaign skips; None for a required topic (nobody leaves it)."""
        name = campaign.topic or self.config.default_topic
        return None if self.config.topic_required(name) else name

    def capped(self, campaign: Campaign) -> bool:
        """Do its messages count against a frequency cap (marketing on a capped channel)?"""
        caps = self.config.limits.frequency_cap
        return caps is not None and caps.applies_to(campaign.channels) and self.topic(campaign) is not None

    def _any(self, conditions: tuple) -> bool:
        return bool(self.conn.execute(sa.select(sa.exists(sa.select(deliveries.c.id).where(*conditions)))).scalar())

    def _query(self, campaign: Campaign, ctx: EvalContext, contact: bool = True) -> sa.Select:
        """The audience with what decides each member's outcome, in the order `classify` reads
        it: id, a consent per channel, cooling, a count per cap, exclusive, when; then, only where
        asked, contact details and locale (a dry run of a million need not read them)."""
        at = ctx.at_utc
        columns: list[Any] = [customers.c.id, *self._consent_columns(campaign)]
        step = journey_of(campaign)
        # A journey's cooldown counts from the last entry, whatever became of the first step.
        states = tuple(DeliveryStatus) if step is not None and step.is_entry else COOLDOWN_STATES
        cooling = (
            deliveries.c.campaign == campaign.campaign,
            deliveries.c.status.in_(states),
            *self._window(at, campaign.cooldown),
        )
        # Probing the ledger for every matched customer costs more than the audience itself; when
        # one cheap check shows nothing there to find, the column is a constant (exact, not a guess).
        if campaign.cooldown.total_seconds() > 0 and self._any(cooling):
            recent = sa.select(deliveries.c.id).where(deliveries.c.customer_id == customers.c.id, *cooling)
            columns.append(sa.exists(recent).label("cooling"))
        else:
            columns.append(sa.false().label("cooling"))
        columns += self._cap_columns(campaign, at)
        columns.append(self._exclusive_column(campaign, at))
        when = step.step_when if step is not None else None
        columns.append(compile_condition(when, ctx).label("when") if when is not None else sa.true().label("when"))
        if contact:
            columns += [customers.c.email, customers.c.phone, customers.c.timezone]
        if self.count_locales:
            columns.append(customers.c.locale)
        query = sa.select(*columns).where(compile_condition(campaign.audience, ctx))
        if campaign.trigger is not None:
            query = query.where(triggered(self.conn, campaign, self.at))
        return query

    def _consent_columns(self, campaign: Campaign) -> list[Any]:
        """One boolean per channel of the campaign (its topic included); a campaign of coupons and
        tasks only has one: is the profile a named customer."""
        if not campaign.channels:
            return [named().label("consent")]
        facts, topic = self.facts(), self.topic(campaign)
        return [channel_consent(c, facts, topic).label(f"consent_{c}") for c in campaign.channels]

    def cap_limits(self, campaign: Campaign) -> list[tuple[str, FrequencyCap]]:
        """The caps its messages count against: (channel or "all", cap), in a fixed order."""
        caps = self.config.limits.frequency_cap
        if caps is None or not self.capped(campaign):
            return []
        found: list[tuple[str, FrequencyCap]] = [(str(c), cap) for c in campaign.channels if (cap := caps.of(c))]
        return found + ([(ALL_CHANNELS, caps.all)] if caps.all is not None else [])

    def _cap_columns(self, campaign: Campaign, at: datetime) -> list[sa.ColumnElement]:
        """Per cap: the customer's messages in the ledger within its window, either side of `at`."""
        columns: list[sa.ColumnElement] = []
        for key, cap in self.cap_limits(campaign):
            counted: tuple[Any, ...] = (
                deliveries.c.counts_toward_cap.is_(True),
                deliveries.c.status.in_(CAP_STATES),
                *self._window(at, cap.per),
            )
            if key != ALL_CHANNELS:
                counted += (deliveries.c.channel == key,)
            if self._any(counted):
                used = sa.select(sa.func.count()).where(deliveries.c.customer_id == customers.c.id, *counted)
                columns.append(used.scalar_subquery().label(f"cap_{key}"))
            else:
                columns.append(sa.literal(0).label(f"cap_{key}"))
        return columns

    def exclusive_window(self, campaign: Campaign) -> timedelta | None:
        """The campaign's exclusive group window, where it applies: at a journey's entry only (its
        later steps are the same offer going on)."""
        step = journey_of(campaign)
        if campaign.exclusive is None or (step is not None and not step.is_entry):
            return None
        return self.config.limits.exclusive.get(campaign.exclusive)

    def _exclusive_column(self, campaign: Campaign, at: datetime) -> sa.ColumnElement:
        """Did another campaign of the group reach them within the window (either side of `at`)?"""
        window = self.exclusive_window(campaign)
        if window is None:
            return sa.false().label("exclusive")
        step = journey_of(campaign)
        own = step.step_names if step is not None else (campaign.campaign,)
        reached = (
            deliveries.c.exclusive_group == campaign.exclusive,
            deliveries.c.campaign.not_in(own),
            deliveries.c.status.in_(CAP_STATES),
            *self._window(at, window),
        )
        if not self._any(reached):
            return sa.false().label("exclusive")
        found = sa.select(deliveries.c.id).where(deliveries.c.customer_id == customers.c.id, *reached)
        return sa.exists(found).label("exclusive")

    def skips(self, campaign: Campaign, outcome: Outcome) -> bool:
        """Is this outcome a journey step recorded `skipped` (the journey goes on) rather than an exclusion?"""
        step = journey_of(campaign)
        if step is None or outcome not in SKIPPING:
            return False
        return outcome is Outcome.WHEN_FALSE or not step.is_entry

    def classify(self, campaign: Campaign, only: str | None = None, contact: bool = True) -> Iterator[Classified]:
        """Yield (customer id, outcome) for everyone in the audience (or just `only`), in id order.

        The outcome is ``targeted``, ``held_out`` or the first exclusion that applies. Without
        `contact`, email and time zone are not read (None).
        """
        ctx = self.context()
        query = self._query(campaign, ctx, contact).order_by(customers.c.id)
        if only is not None:
            query = query.where(customers.c.id == only)
        result = self.conn.execution_options(yield_per=STREAM_BATCH).execute(query)
        in_global = holdout_test(GLOBAL_SALT, self.config.limits.global_holdout)
        held_out = holdout_test(campaign.campaign, campaign.holdout)
        group = campaign.exclusive if self.exclusive_window(campaign) is not None else None
        taken = self.group_taken.setdefault(group, set()) if group is not None else None
        remember = taken is not None and only is None
        channels = campaign.channels
        caps = CapCheck(self.cap_limits(campaign), self.cap_used)
        # This loop runs once per member of the audience (a million, for some campaigns): the row's
        # layout is fixed by `_query`, and the arithmetic of caps and of partly reached customers is
        # skipped where the campaign has neither (most campaigns: one channel, no cap).
        n_consents = max(len(channels), 1)
        cooling_at, exclusive_at, when_at = (
            n_consents + 1,
            n_consents + 2 + len(caps.limits),
            n_consents + 3 + len(caps.limits),
        )
        detailed = bool(caps.limits) or len(channels) > 1
        locale_at = when_at + (4 if contact else 1)
        for rows in result.partitions():
            for row in rows:
                customer_id = row[0]
                email, phone, zone = row[when_at + 1 : when_at + 4] if contact else (None, None, None)
                # A journey step's `when` comes last: at entry, the exclusions decide who enters at all.
                if in_global is not None and in_global(customer_id):
                    outcome = Outcome.GLOBAL_HOLDOUT
                elif not any(row[1:cooling_at]):
                    outcome = Outcome.NO_CONSENT
                elif row[cooling_at]:
                    outcome = Outcome.COOLDOWN
                elif held_out is not None and held_out(customer_id):
                    outcome = Outcome.HELD_OUT
                elif taken is not None and (row[exclusive_at] or customer_id in taken):
                    outcome = Outcome.EXCLUSIVE
                elif detailed and not (
                    reached := caps.room(
                        customer_id, consented(channels, row[1:cooling_at]), row[cooling_at + 1 : exclusive_at]
                    )
                ):
                    outcome = Outcome.FREQUENCY_CAP
                elif not row[when_at]:
                    outcome = Outcome.WHEN_FALSE
                else:
                    locale = row[locale_at] if self.count_locales else None
                    if remember:
                        taken.add(customer_id)  # type: ignore[union-attr]
                    if not detailed:
                        yield Classified(customer_id, Outcome.TARGETED, email, zone, phone, channels, (), locale)
                        continue
                    caps.take(customer_id, reached)
                    refused = refused_channels(channels, row[1:cooling_at], reached, caps.why)
                    yield Classified(customer_id, Outcome.TARGETED, email, zone, phone, reached, refused, locale)
                    continue
                yield Classified(customer_id, outcome, email, zone, phone)

    def first_targeted(self, campaign: Campaign) -> str | None:
        """The first customer (by id) this campaign would contact now: a sample to render for."""
        found = (c.customer_id for c in self.classify(campaign, contact=False) if c.outcome == Outcome.TARGETED)
        return next(found, None)

    def exclusions(self, campaign: Campaign) -> dict[Exclusion, int]:
        """The exclusions a plan of this campaign counts, all zero: the optional ones only where
        they apply (the dry run's keys, and the audience history's)."""
        found = CampaignPlan(campaign=campaign.campaign).excluded
        if self.config.limits.global_holdout:
            found[Exclusion.GLOBAL_HOLDOUT] = 0
        step = journey_of(campaign)
        if step is not None and step.step_when is not None:
            found[Exclusion.WHEN_FALSE] = 0
        if self.exclusive_window(campaign) is not None:
            found[Exclusion.EXCLUSIVE] = 0
        return found

    def plan(self, campaign: Campaign) -> CampaignPlan:
        """Counts and id lists for one campaign."""
        result = CampaignPlan(campaign=campaign.campaign, excluded=self.exclusions(campaign))
        step = journey_of(campaign)
        if step is not None:
            result.journey = {
                "journey": step.journey,
                "step": step.step,
                "position": step.index + 1,
                "of": step.step_count,
            }
        weights = [(v.name, v.weight) for v in campaign.variants]
        targeted, held_out, skipped, excluded = result.targeted, result.held_out, result.skipped, result.excluded
        channels = campaign.channels
        reach: Counter[tuple[Channel, ...]] = Counter()  # targeted per set of channels reached
        matched = 0
        # Once per member of the audience: nothing here that a count after the loop can do.
        for customer_id, outcome, _, _, _, reached, _, locale in self.classify(campaign, contact=False):
            matched += 1
            if outcome is Outcome.TARGETED:
                targeted.append(customer_id)
                reach[reached] += 1
                if self.count_locales:
                    result.locales[self.config.locales.served(locale)] += 1
                if len(reached) < len(channels):
                    result.partial[customer_id] = tuple(reached)
                arm = variant_for(campaign.campaign, customer_id, weights) if weights else None
                if arm is not None:
                    result.variants[arm] = result.variants.get(arm, 0) + 1
                continue
            if outcome is Outcome.HELD_OUT:
                held_out.append(customer_id)
            elif self.skips(campaign, outcome):
                skipped.append(customer_id)
            kind = EXCLUSION_OF[outcome]
            excluded[kind] = excluded.get(kind, 0) + 1
        result.matched = matched
        result.channels = {str(c): sum(n for found, n in reach.items() if c in found) for c in channels}
        return result
