"""What planning a campaign finds: each member's outcome, and the plan's counts and ids."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.core.channels import Channel
from engine.core.status import Exclusion, Outcome


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
