"""The frequency caps of a campaign as the planner applies them: per channel and in total, counting
the ledger and what the same planning already gave each customer."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from engine.core.channels import Channel
from engine.rules.channels_config import FrequencyCap

ALL_CHANNELS = "all"


@dataclass
class CapCheck:
    """The frequency caps of one campaign: which of a customer's channels still have room, given the
    ledger's count (`used`, one per cap) and what this planning already gave them (`planned`)."""

    limits: list[tuple[str, FrequencyCap]]
    planned: Counter
    full: set[str] = field(default_factory=set)  # the caps the last `room` found used up, for `why`

    def room(self, customer_id: str, channels: tuple[Channel, ...], used: tuple) -> tuple[Channel, ...]:
        if not self.limits:
            return channels
        counts = {key: (u or 0) + self.planned[customer_id, key] for (key, _), u in zip(self.limits, used, strict=True)}
        maxima = dict((key, cap.max) for key, cap in self.limits)
        self.full = {key for key in maxima if counts[key] >= maxima[key]}
        left = maxima[ALL_CHANNELS] - counts[ALL_CHANNELS] if ALL_CHANNELS in maxima else len(channels)
        open_: list[Channel] = []
        for channel in channels:
            if len(open_) >= left:
                break
            if channel not in maxima or counts[channel] < maxima[channel]:
                open_.append(channel)
        return tuple(open_)

    def why(self, channel: Channel) -> str:
        """Why the last `room` left this channel out: its own cap, or the cap on all channels."""
        return f"frequency cap ({channel})" if channel in self.full else f"frequency cap ({ALL_CHANNELS} channels)"

    def take(self, customer_id: str, channels: tuple[Channel, ...]) -> None:
        keys = {key for key, _ in self.limits}
        for channel in channels:
            if channel in keys:
                self.planned[customer_id, str(channel)] += 1
            if ALL_CHANNELS in keys:
                self.planned[customer_id, ALL_CHANNELS] += 1
