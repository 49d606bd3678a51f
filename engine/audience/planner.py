"""Audience → exclusions in SPEC order → targets. The dry run and the run both use this."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.audience.assignment import GLOBAL_SALT, holdout_test, variant_for
from engine.audience.caps import ALL_CHANNELS, CapCheck
from engine.audience.compiler import EvalContext, compile_condition, store_timezones
from engine.audience.consent import ConsentFacts, channel_consent, consented, named, refused_channels
from engine.audience.plan import CampaignPlan, Classified
from engine.audience.trigger import triggered
from engine.core.channels import Channel
from engine.core.collector import collector_paused
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


NO_CONTACT = (None, None, None)
# One member's outcome: (outcome, its row as the database gave it, channels reached, refused ones)
Decided = tuple[Outcome, Any, tuple[Channel, ...], tuple[tuple[Channel, str], ...]]


class _Layout(NamedTuple):
    """Where `classify` finds each part of a row (None: not selected, the same for everyone)."""

    consents: int  # how many consent columns, from position 1
    cooling: int | None
    caps: tuple[int, int]  # the cap counts' slice
    exclusive: int | None
    when: int | None
    contact: int | None  # email, then phone and time zone
    locale: int | None


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

    def _query(self, campaign: Campaign, ctx: EvalContext, contact: bool = True) -> tuple[sa.Select, _Layout]:
        """The audience with what decides each member's outcome, and where `classify` finds each
        part in a row: id, a consent per channel, then cooling, a count per cap, exclusive and when
        where they can vary, then, only where asked, contact details and locale (a dry run of a
        million need not read them). A part the ledger shows to be the same for everyone is not
        selected: a constant column still costs a conversion per member."""
        at = ctx.at_utc
        columns: list[Any] = [customers.c.id, *self._consent_columns(campaign)]
        consents = len(columns) - 1

        def place(column: sa.ColumnElement | None) -> int | None:
            if column is None:
                return None
            columns.append(column)
            return len(columns) - 1

        step = journey_of(campaign)
        cooling = place(self._cooling_column(campaign, at))
        caps = len(columns), len(columns) + len(self.cap_limits(campaign))
        columns += self._cap_columns(campaign, at)
        exclusive = place(self._exclusive_column(campaign, at))
        when = step.step_when if step is not None else None
        when_at = place(compile_condition(when, ctx).label("when") if when is not None else None)
        contact_at = place(customers.c.email) if contact else None
        if contact:
            columns += [customers.c.phone, customers.c.timezone]
        locale = place(customers.c.locale) if self.count_locales else None
        layout = _Layout(consents, cooling, caps, exclusive, when_at, contact_at, locale)
        query = sa.select(*columns).where(compile_condition(campaign.audience, ctx))
        if campaign.trigger is not None:
            query = query.where(triggered(self.conn, campaign, self.at))
        return query, layout

    def _cooling_column(self, campaign: Campaign, at: datetime) -> sa.ColumnElement | None:
        """Did this campaign reach them within its cooldown (either side of `at`)? None: nobody."""
        step = journey_of(campaign)
        # A journey's cooldown counts from the last entry, whatever became of the first step.
        states = tuple(DeliveryStatus) if step is not None and step.is_entry else COOLDOWN_STATES
        cooling = (
            deliveries.c.campaign == campaign.campaign,
            deliveries.c.status.in_(states),
            *self._window(at, campaign.cooldown),
        )
        # Probing the ledger for every matched customer costs more than the audience itself; when
        # one cheap check shows nothing there to find, there is no column (exact, not a guess).
        if campaign.cooldown.total_seconds() <= 0 or not self._any(cooling):
            return None
        recent = sa.select(deliveries.c.id).where(deliveries.c.customer_id == customers.c.id, *cooling)
        return sa.exists(recent).label("cooling")

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

    def _exclusive_column(self, campaign: Campaign, at: datetime) -> sa.ColumnElement | None:
        """Did another campaign of the group reach them within the window (either side of `at`)?
        None: nobody (no group, or nothing of it in the ledger)."""
        window = self.exclusive_window(campaign)
        if window is None:
            return None
        step = journey_of(campaign)
        own = step.step_names if step is not None else (campaign.campaign,)
        reached = (
            deliveries.c.exclusive_group == campaign.exclusive,
            deliveries.c.campaign.not_in(own),
            deliveries.c.status.in_(CAP_STATES),
            *self._window(at, window),
        )
        if not self._any(reached):
            return None
        found = sa.select(deliveries.c.id).where(deliveries.c.customer_id == customers.c.id, *reached)
        return sa.exists(found).label("exclusive")

    def skips(self, campaign: Campaign, outcome: Outcome) -> bool:
        """Is this outcome a journey step recorded `skipped` (the journey goes on) rather than an exclusion?"""
        step = journey_of(campaign)
        if step is None or outcome not in SKIPPING:
            return False
        return outcome is Outcome.WHEN_FALSE or not step.is_entry

    def classify(
        self, campaign: Campaign, only: str | None = None, contact: bool = True, ordered: bool = True
    ) -> Iterator[Classified]:
        """Yield (customer id, outcome) for everyone in the audience (or just `only`), in id order
        (in the database's own order when not `ordered`: each outcome depends on the member alone,
        so only a reader that resumes by position needs the sort).

        The outcome is ``targeted``, ``held_out`` or the first exclusion that applies. Without
        `contact`, email and time zone are not read (None).
        """
        layout, found = self._decided(campaign, only, contact, ordered)
        contact_at, locale_at = layout.contact, layout.locale
        for outcome, row, reached, refused in found:
            email, phone, zone = row[contact_at : contact_at + 3] if contact_at is not None else NO_CONTACT
            locale = row[locale_at] if locale_at is not None else None
            yield Classified(row[0], outcome, email, zone, phone, reached, refused, locale)

    def _decided(
        self, campaign: Campaign, only: str | None, contact: bool, ordered: bool
    ) -> tuple[_Layout, Iterator[Decided]]:
        query, layout = self._query(campaign, self.context(), contact)
        if ordered:
            query = query.order_by(customers.c.id)
        if only is not None:
            query = query.where(customers.c.id == only)
        result = self.conn.execution_options(yield_per=STREAM_BATCH).execute(query)
        return layout, self._outcomes(campaign, result.partitions(), layout, remember=only is None)

    def _outcomes(
        self, campaign: Campaign, batches: Iterator[Sequence[Any]], layout: _Layout, remember: bool
    ) -> Iterator[Decided]:
        """Each row's outcome, exclusions in SPEC order; `remember`: mark the targeted as taken
        for the campaign's exclusive group (not when one customer is looked at alone)."""
        in_global = holdout_test(GLOBAL_SALT, self.config.limits.global_holdout)
        held_out = holdout_test(campaign.campaign, campaign.holdout)
        group = campaign.exclusive if self.exclusive_window(campaign) is not None else None
        taken = self.group_taken.setdefault(group, set()) if group is not None else None
        remember = remember and taken is not None
        channels = campaign.channels
        caps = CapCheck(self.cap_limits(campaign), self.cap_used)
        # This loop runs once per member of the audience (a million, for some campaigns): it
        # yields the database's own row (no copy), the parts of a row sit where `_query` put them
        # (None: the same for everyone, not read), and the arithmetic of caps and of partly
        # reached customers is skipped where the campaign has neither (most campaigns: one
        # channel, no cap).
        n = layout.consents + 1
        single = n == 2
        cooling, (caps_from, caps_to), exclusive, when = layout.cooling, layout.caps, layout.exclusive, layout.when
        detailed = bool(caps.limits) or len(channels) > 1
        targeted, nothing = Outcome.TARGETED, ()
        for rows in batches:
            for row in rows:
                customer_id = row[0]
                # A journey step's `when` comes last: at entry, the exclusions decide who enters at all.
                if in_global is not None and in_global(customer_id):
                    yield Outcome.GLOBAL_HOLDOUT, row, nothing, nothing
                elif not (row[1] if single else any(row[1:n])):
                    yield Outcome.NO_CONSENT, row, nothing, nothing
                elif cooling is not None and row[cooling]:
                    yield Outcome.COOLDOWN, row, nothing, nothing
                elif held_out is not None and held_out(customer_id):
                    yield Outcome.HELD_OUT, row, nothing, nothing
                elif taken is not None and ((exclusive is not None and row[exclusive]) or customer_id in taken):
                    yield Outcome.EXCLUSIVE, row, nothing, nothing
                elif detailed and not (
                    reached := caps.room(customer_id, consented(channels, row[1:n]), row[caps_from:caps_to])
                ):
                    yield Outcome.FREQUENCY_CAP, row, nothing, nothing
                elif when is not None and not row[when]:
                    yield Outcome.WHEN_FALSE, row, nothing, nothing
                else:
                    if remember:
                        taken.add(customer_id)  # type: ignore[union-attr]
                    if not detailed:
                        yield targeted, row, channels, nothing
                        continue
                    caps.take(customer_id, reached)
                    yield targeted, row, reached, refused_channels(channels, row[1:n], reached, caps.why)

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
        # Once per member of the audience, which can be a million: nothing in the loop that a count
        # after it can do, and no cycle collection while it runs (see collector_paused).
        with collector_paused():
            self._count(campaign, result, weights)
        return result

    def _count(self, campaign: Campaign, result: CampaignPlan, weights: list[tuple[str, float]]) -> None:
        targeted, held_out, skipped, excluded = result.targeted, result.held_out, result.skipped, result.excluded
        channels = campaign.channels
        reach: Counter[tuple[Channel, ...]] = Counter()  # targeted per set of channels reached
        matched = 0
        layout, found = self._decided(campaign, None, contact=False, ordered=False)
        locale_at, every = layout.locale, len(channels)
        skipping = {outcome for outcome in SKIPPING if self.skips(campaign, outcome)}
        tally: Counter[Outcome] = Counter()  # the excluded, by outcome
        for outcome, row, reached, _ in found:
            customer_id = row[0]
            matched += 1
            if outcome is Outcome.TARGETED:
                targeted.append(customer_id)
                reach[reached] += 1
                if locale_at is not None:
                    result.locales[self.config.locales.served(row[locale_at])] += 1
                if len(reached) < every:
                    result.partial[customer_id] = tuple(reached)
                arm = variant_for(campaign.campaign, customer_id, weights) if weights else None
                if arm is not None:
                    result.variants[arm] = result.variants.get(arm, 0) + 1
                continue
            if outcome is Outcome.HELD_OUT:
                held_out.append(customer_id)
            elif outcome in skipping:
                skipped.append(customer_id)
            tally[outcome] += 1
        for outcome, count in tally.items():
            excluded[EXCLUSION_OF[outcome]] = excluded.get(EXCLUSION_OF[outcome], 0) + count
        result.matched = matched
        targeted.sort()  # in id order, as samples are picked and ids shown (cheaper here than in SQL)
        held_out.sort()
        result.channels = {str(c): sum(n for got, n in reach.items() if c in got) for c in channels}
