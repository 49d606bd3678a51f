"""Audience history: each planned occurrence's funnel (matched, each exclusion, targeted, held out,
per variant, locale and channel) and its planning time, one row per (campaign, occurrence).

The tally is counted from the planner's outcomes in the same pass that writes the ledger, and
written in the same transaction as each batch of ledger rows: what the row says is exactly what
the committed batches planned. A re-plan after a crash or a stop resumes from that row (the
customers already counted are skipped, not counted twice) and overwrites it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.audience.assignment import variant_for
from engine.audience.plan import Classified
from engine.audience.planner import Planner
from engine.core.status import EXCLUSION_OF, Outcome
from engine.rules.campaign import Campaign
from engine.store.db import dialect_insert
from engine.store.tables import audience_history


@dataclass
class AudienceTally:
    """Counts of one occurrence's plan, in the dry run's shape."""

    excluded: dict[str, int]
    weights: list[tuple[str, float]]
    served: Callable[[str | None], str]  # a customer's locale → the one they are served in
    campaign: str = ""
    matched: int = 0
    targeted: int = 0
    held_out: int = 0
    variants: dict[str, int] = field(default_factory=dict)
    locales: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # planning time of the attempts before this one (a resumed plan)
    skip: int = 0  # customers at the head of the stream a previous attempt already counted

    def add(self, item: Classified) -> None:
        if self.skip:
            # Classified in id order: the first `matched` of the stream are what the committed
            # batches counted (their ledger rows would make them look cooling down now).
            self.skip -= 1
            return
        self.matched += 1
        if item.outcome is not Outcome.TARGETED:
            kind = str(EXCLUSION_OF[item.outcome])
            self.excluded[kind] = self.excluded.get(kind, 0) + 1
            self.held_out += item.outcome is Outcome.HELD_OUT
            return
        self.targeted += 1
        for channel in item.channels:
            self.channels[channel] = self.channels.get(channel, 0) + 1
        locale = self.served(item.locale)
        self.locales[locale] = self.locales.get(locale, 0) + 1
        if self.weights:
            arm = variant_for(self.campaign, item.customer_id, self.weights)
            if arm is not None:
                self.variants[arm] = self.variants.get(arm, 0) + 1

    def values(self, seconds: float) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "excluded": dict(self.excluded),
            "targeted": self.targeted,
            "held_out": self.held_out,
            "variants": dict(sorted(self.variants.items())) or None,
            "locales": dict(sorted(self.locales.items())) or None,
            "channels": dict(self.channels) or None,
            "planning_seconds": round(self.seconds + seconds, 3),
        }


def start_tally(conn: Connection, planner: Planner, campaign: Campaign, occurrence: datetime) -> AudienceTally:
    """A tally for planning this occurrence, resuming the one a stopped or crashed attempt left.

    Only called while the occurrence is still being planned (engine.delivery.occurrence), so a row
    found here is a partial tally, never a finished one."""
    tally = AudienceTally(
        excluded={str(k): v for k, v in planner.exclusions(campaign).items()},
        weights=[(v.name, v.weight) for v in campaign.variants],
        served=planner.config.locales.served,
        campaign=campaign.campaign,
        channels={str(c): 0 for c in campaign.channels},
    )
    found = conn.execute(
        sa.select(audience_history).where(
            audience_history.c.campaign == campaign.campaign, audience_history.c.occurrence == occurrence
        )
    ).first()
    if found is not None:
        tally.matched = tally.skip = found.matched
        tally.targeted, tally.held_out = found.targeted, found.held_out
        tally.excluded.update(found.excluded or {})
        tally.variants, tally.locales = dict(found.variants or {}), dict(found.locales or {})
        tally.channels.update(found.channels or {})
        tally.seconds = found.planning_seconds or 0.0
    return tally


def record_tally(
    conn: Connection, campaign: str, occurrence: datetime, tally: AudienceTally, seconds: float, now: datetime
) -> None:
    """Write the tally so far: inserted at the first batch, overwritten at each later one."""
    values = tally.values(seconds)
    stmt = dialect_insert(conn.dialect.name, audience_history).values(
        campaign=campaign, occurrence=occurrence, recorded_at=now, **values
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[audience_history.c.campaign, audience_history.c.occurrence],
            set_={"recorded_at": now, **values},
        )
    )
