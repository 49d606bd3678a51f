"""The planner's decision for one customer as ledger rows: one per channel of the campaign. The
first channel the customer is reached on carries the coupons and tasks; a channel they refused is
a `skipped` row with the reason; held-out and journey-skipped customers get one row."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engine.audience.assignment import variant_for
from engine.audience.plan import Classified
from engine.core.channels import NO_CHANNEL, Channel
from engine.core.clock import naive_utc
from engine.core.status import SKIPPING, DeliveryStatus, Outcome
from engine.delivery import ledger
from engine.delivery.quiet import release_time
from engine.rules.actions import EmailAction, action_channel
from engine.rules.campaign import Campaign
from engine.rules.config import Config

# Quiet hours hold what reaches a person's pocket at night; a webhook goes to the shop's systems.
HELD_BY_QUIET_HOURS: dict[Channel, bool] = {Channel.EMAIL: True, Channel.SMS: True, Channel.WEBHOOK: False}


@dataclass
class RowShaper:
    """One campaign's actions split by channel, fixed once per occurrence."""

    config: Config
    campaign: Campaign
    at: datetime
    marketing: bool  # its messages count toward the frequency cap (not a required topic)
    messages: dict[Channel, list[int]] = field(default_factory=dict)
    others: list[int] = field(default_factory=list)  # coupons and tasks

    def __post_init__(self) -> None:
        for index, action in enumerate(self.campaign.actions):
            channel = action_channel(action)
            if channel is None:
                self.others.append(index)
            else:
                self.messages.setdefault(channel, []).append(index)
        self.weights = [(v.name, v.weight) for v in self.campaign.variants]
        self.tested = {
            i for i, a in enumerate(self.campaign.actions) if isinstance(a, EmailAction) and a.email.variants
        }
        self.lead = self.campaign.channels[0] if self.campaign.channels else NO_CHANNEL

    def rows(self, item: Classified, applies: list[int]) -> list[ledger.PlannedRow]:
        if item.outcome in SKIPPING:
            # A journey step that does not reach this customer: recorded, so the journey goes on.
            return [self._row(item, DeliveryStatus.SKIPPED, self.lead, "", reason=str(item.outcome))]
        if item.outcome != Outcome.TARGETED:
            return [self._row(item, DeliveryStatus.HELD_OUT, self.lead, ledger.format_actions(applies))]
        if not self.campaign.channels:
            return [self._row(item, DeliveryStatus.PENDING, NO_CHANNEL, ledger.format_actions(applies))]
        rows: list[ledger.PlannedRow] = []
        for channel in item.channels:
            indexes = [i for i in self.messages.get(channel, []) if i in applies]
            if not rows:  # the first channel reached carries the coupons and tasks
                indexes = sorted(indexes + [i for i in self.others if i in applies])
            elif not indexes:
                continue
            rows.append(self._row(item, DeliveryStatus.PENDING, channel, ledger.format_actions(indexes)))
        rows += [self._row(item, DeliveryStatus.SKIPPED, channel, "", reason=why) for channel, why in item.refused]
        return rows

    def _row(
        self, item: Classified, status: DeliveryStatus, channel: str, actions: str, reason: str | None = None
    ) -> ledger.PlannedRow:
        pending = status == DeliveryStatus.PENDING
        indexes = set(ledger.action_indexes(actions))
        return ledger.PlannedRow(
            customer_id=item.customer_id,
            status=status,
            email=item.email if channel in (Channel.EMAIL, NO_CHANNEL) else None,
            phone=item.phone if channel == Channel.SMS else None,
            not_before=self._not_before(item, channel) if pending else None,
            actions=actions,
            counts_toward_cap=pending and self.marketing and channel != NO_CHANNEL,
            variant=variant_for(self.campaign.campaign, item.customer_id, self.weights)
            if pending and indexes & self.tested
            else None,
            reason=reason,
            exclusive_group=self.campaign.exclusive,
            channel=channel,
        )

    def _not_before(self, item: Classified, channel: str) -> datetime | None:
        quiet = self.config.limits.quiet_hours
        if quiet is None or channel == NO_CHANNEL or not HELD_BY_QUIET_HOURS[Channel(channel)]:
            return None
        opening = release_time(self.at, item.timezone or self.config.timezone, quiet.start, quiet.end)
        return naive_utc(opening) if opening else None
