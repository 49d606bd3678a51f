"""A journey (a campaign with `steps:`) as the campaigns that deliver it: one per step, named
CAMPAIGN/STEP, each with the ledger, never-twice guarantee, guardrails and dry-run line of any
campaign. Where a customer is in the journey is read from the ledger, never stored twice.

The first step's audience is the journey's audience and "not already in the journey"; it carries
the journey's cooldown and holdout (decided at entry). A later step's audience is "due for this
step": entered, the previous step done at least `wait` ago, this step not yet had since entering,
and no `exit_on` event since entering."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any, ClassVar

from engine.rules.actions import CouponAction, CouponSpec
from engine.rules.base import StrictModel
from engine.rules.campaign import Campaign
from engine.rules.conditions import AllOf, ConditionKind, Not


class Position(StrEnum):
    IN_JOURNEY = "in_journey"  # entered, and neither finished nor exited
    DUE = "due"  # due for step `index` now


class JourneyPosition(StrictModel):
    """Internal condition: built by `expand`, never written in a rule file (not in the schema)."""

    kind: ClassVar[ConditionKind] = ConditionKind.JOURNEY
    test: Position
    journey: str
    steps: tuple[str, ...]  # every step's ledger name, CAMPAIGN/STEP, in order
    index: int = 0  # DUE: the step tested (≥ 1)
    wait: timedelta = timedelta(0)
    exit_on: str | None = None


class JourneyStep(Campaign):
    """One step of a journey, run as a campaign named CAMPAIGN/STEP."""

    journey: str
    step: str
    index: int
    step_names: tuple[str, ...]
    wait: timedelta | None = None
    step_when: Any = None
    earlier_coupons: tuple[CouponSpec, ...] = ()  # issued by earlier steps of the same pass

    @property
    def template_coupons(self) -> list[CouponSpec]:
        own = super().template_coupons
        mine = {c.name for c in own}
        return [c for c in self.earlier_coupons if c.name not in mine] + own

    @property
    def is_entry(self) -> bool:
        return self.index == 0

    @property
    def step_count(self) -> int:
        return len(self.step_names)


def step_name(journey: str, step: str) -> str:
    return f"{journey}/{step}"


def expand(campaign: Campaign) -> list[Campaign]:
    """The campaigns that deliver this one: itself, or a journey's steps in order."""
    if campaign.steps is None:
        return [campaign]
    names = tuple(step_name(campaign.campaign, s.name) for s in campaign.steps)
    exit_on = campaign.exit_on.event if campaign.exit_on else None
    shared = {
        key: getattr(campaign, key)
        for key in ("description", "enabled", "schedule", "priority", "goal", "exit_on", "exclusive", "topic")
    }
    found: list[Campaign] = []
    for index, step in enumerate(campaign.steps):
        position = JourneyPosition(
            test=Position.DUE if index else Position.IN_JOURNEY,
            journey=campaign.campaign,
            steps=names,
            index=index,
            wait=step.wait or timedelta(0),
            exit_on=exit_on,
        )
        if index == 0:
            # Built without validation: the position test is internal, never a rule-file condition.
            outside: Any = Not.model_construct(not_=position)  # type: ignore[arg-type]
            audience: Any = AllOf.model_construct(all_=[campaign.audience, outside])
        else:
            audience = position
        found.append(
            JourneyStep.model_construct(
                **shared,
                campaign=names[index],
                audience=audience,
                # Cooldown and holdout are decided at entry; a later step reaches whoever is due.
                cooldown=campaign.cooldown if index == 0 else timedelta(0),
                holdout=campaign.holdout if index == 0 else 0.0,
                actions=step.actions,
                steps=None,
                journey=campaign.campaign,
                step=step.name,
                index=index,
                step_names=names,
                wait=step.wait,
                step_when=step.when,
                earlier_coupons=tuple(
                    a.coupon for s in campaign.steps[:index] for a in s.actions if isinstance(a, CouponAction)
                ),
            )
        )
    return found


def journey_of(campaign: Campaign) -> JourneyStep | None:
    return campaign if isinstance(campaign, JourneyStep) else None
