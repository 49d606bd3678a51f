"""A campaign file as pydantic models: who (audience), when (schedule), what (actions)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from engine.core.channels import Channel
from engine.core.fields import CAMPAIGN_NAME_MAX, MAX_ACTIONS
from engine.rules.actions import (  # re-exported: the campaign module is where readers look for them
    Action,
    CouponAction,
    CouponSpec,
    EmailAction,
    Variant,
    action_channel,
    action_spec,
)
from engine.rules.base import StrictModel
from engine.rules.conditions import Condition, FollowedBy
from engine.rules.types import SLUG_PATTERN, Duration, Percent


class Every(StrictModel):
    every: Duration = Field(description="run at this fixed interval, e.g. 15m")

    @field_validator("every")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("every must be longer than 0")
        return value


def check_cron(expression: str) -> str:
    """Validate a 5-field cron expression with APScheduler's own parser."""
    from apscheduler.triggers.cron import CronTrigger

    if len(expression.split()) != 5:
        raise ValueError(f"invalid cron {expression!r}: expected 5 fields (minute hour day month weekday)")
    try:
        CronTrigger.from_crontab(expression, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"invalid cron {expression!r}: {exc}") from None
    return expression


Cron = Annotated[str, Field(description="5-field cron in the config time zone, e.g. '0 9 * * *'")]


class Trigger(StrictModel):
    """Evaluate the campaign for a customer when an event of this type arrives, `delay` after it."""

    event: str = Field(min_length=1, max_length=64, description="the event type that triggers it, e.g. add_to_cart")
    delay: Duration = Field(timedelta(0), description="how long after the event, e.g. 1h")
    not_followed_by: str | FollowedBy | None = Field(
        None,
        description="skip a trigger followed (before the delay ends) by this event type, or by "
        "{type, same: [PROPERTY]}: one with the same values as the trigger, e.g. the same cart_id",
    )

    @property
    def follow(self) -> FollowedBy | None:
        if isinstance(self.not_followed_by, str):
            return FollowedBy(type=self.not_followed_by)
        return self.not_followed_by


class Goal(StrictModel):
    """A conversion: a goal event within a window after the message's occurrence."""

    event: str = Field("purchase", description="event type that counts as a conversion")
    within: Duration = Field(timedelta(days=7), description="after the occurrence")


class Step(StrictModel):
    """One step of a journey: delivered like a campaign named CAMPAIGN/STEP."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=40, description="the step's name, e.g. reminder")
    wait: Duration | None = Field(
        None, description="at least this long after the previous step (not on the first step, which runs at entry)"
    )
    when: Condition | None = Field(None, description="false: the step is recorded `skipped` and the journey goes on")
    actions: list[Action] = Field(min_length=1, max_length=MAX_ACTIONS)


class ExitOn(StrictModel):
    event: str = Field(description="leave the journey when an event of this type happens after entering")


class Campaign(StrictModel):
    """One campaign file in rules/ (a journey when it has `steps:` instead of `actions:`)."""

    campaign: str = Field(
        json_schema_extra={"pattern": SLUG_PATTERN, "maxLength": CAMPAIGN_NAME_MAX},
        description="unique id: lowercase letters, digits, hyphens",
    )
    description: str = ""
    enabled: bool = True
    schedule: Cron | Every | None = Field(
        None, description="when it runs; with `trigger`, how often triggers are looked for (default: every few seconds)"
    )
    trigger: Trigger | None = Field(None, description="run for a customer when their event of this type arrives")
    priority: int = Field(0, description="higher wins when the frequency cap or an exclusive group must choose")
    exclusive: str | None = Field(
        None,
        json_schema_extra={"pattern": SLUG_PATTERN},
        description="an exclusive group named in config.yaml limits.exclusive: at most one campaign of the "
        "group reaches a customer within the group's window",
    )
    topic: str | None = Field(
        None,
        json_schema_extra={"pattern": r"^[a-z][a-z0-9_-]{0,63}$"},
        description="the subscription topic (config.yaml topics); default: the first topic in config",
    )
    audience: Condition
    cooldown: Duration = Field(timedelta(days=30), description="not targeted again within this; 0d: every occurrence")
    holdout: Percent = Field(0.0, description="deterministic control group, e.g. 10%")
    goal: Goal = Field(default_factory=lambda: Goal(), description="what counts as a conversion in `nudge report`")
    actions: list[Action] = Field(
        default_factory=list, max_length=MAX_ACTIONS, description="what each targeted customer gets"
    )
    steps: list[Step] | None = Field(None, min_length=1, description="a journey: steps instead of actions")
    exit_on: ExitOn | None = Field(None, description="journeys: leave when this event happens after entering")

    @field_validator("campaign")
    @classmethod
    def _slug(cls, value: str) -> str:
        if len(value) > CAMPAIGN_NAME_MAX:
            raise ValueError(f"campaign id is {len(value)} characters long: at most {CAMPAIGN_NAME_MAX}")
        if not re.fullmatch(SLUG_PATTERN, value):
            raise ValueError(
                f"campaign id {value!r}: use lowercase letters, digits and single hyphens, e.g. lapsed-buyers"
            )
        return value

    @field_validator("steps")
    @classmethod
    def _step_names_fit(cls, steps: list[Step] | None, info: ValidationInfo) -> list[Step] | None:
        # Each step is delivered as a campaign named CAMPAIGN/STEP: that name must fit too.
        campaign = info.data.get("campaign")
        for step in steps or []:
            if campaign is not None and len(campaign) + 1 + len(step.name) > CAMPAIGN_NAME_MAX:
                raise ValueError(
                    f"step {step.name!r}: {campaign}/{step.name} is longer than {CAMPAIGN_NAME_MAX} characters "
                    "(a step is delivered as CAMPAIGN/STEP): shorten the campaign id or the step name"
                )
        return steps

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: Any) -> Any:
        if isinstance(value, str):
            return check_cron(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Campaign:
        _journey_shape(self)
        for actions in [self.actions] + [s.actions for s in self.steps or []]:
            names = [a.coupon.name for a in actions if isinstance(a, CouponAction)]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"coupon names must be unique in a campaign: {', '.join(duplicates)}")
            for action in actions:
                if action.when is not None and action_spec(action).when is not None:
                    raise ValueError("an action has `when` twice; keep one")
        return self

    @property
    def is_journey(self) -> bool:
        return self.steps is not None

    @property
    def sends_email(self) -> bool:
        return Channel.EMAIL in self.channels

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The channels of its message actions, in the order they first appear (the first reachable
        one carries the coupons and tasks)."""
        found: list[Channel] = []
        for action in self.actions:
            channel = action_channel(action)
            if channel is not None and channel not in found:
                found.append(channel)
        return tuple(found)

    @property
    def variants(self) -> list[Variant]:
        """The A/B variants of this campaign's email, if it tests any."""
        for action in self.actions:
            if isinstance(action, EmailAction) and action.email.variants:
                return list(action.email.variants)
        return []

    @property
    def coupon_names(self) -> list[str]:
        return [a.coupon.name for a in self.actions if isinstance(a, CouponAction)]

    @property
    def template_coupons(self) -> list[CouponSpec]:
        """Coupons its templates may read as `coupons.NAME` (a journey step also sees earlier steps')."""
        return [a.coupon for a in self.actions if isinstance(a, CouponAction)]


def _journey_shape(campaign: Campaign) -> None:
    if campaign.schedule is None and campaign.trigger is None:
        raise ValueError(
            'a campaign needs a schedule (e.g. "0 9 * * *") or a trigger (e.g. {event: add_to_cart, delay: 1h})'
        )
    if campaign.trigger is not None and campaign.steps is not None:
        raise ValueError("a journey is entered on its schedule; trigger is for campaigns with actions")
    if campaign.steps is None:
        if not campaign.actions:
            raise ValueError("a campaign needs actions (or steps, for a journey)")
        if campaign.exit_on is not None:
            raise ValueError("exit_on belongs to journeys: give steps instead of actions")
        return
    if campaign.actions:
        raise ValueError("a journey has steps instead of actions; put the actions inside its steps")
    names = [s.name for s in campaign.steps]
    if len(set(names)) != len(names):
        raise ValueError(f"step names must be unique in a journey, got {', '.join(names)}")
    if campaign.steps[0].wait is not None:
        raise ValueError(f"the first step ({names[0]}) runs when a customer enters; it takes no wait")
    missing = [s.name for s in campaign.steps[1:] if s.wait is None]
    if missing:
        raise ValueError(
            f"every step after the first needs wait (e.g. wait: 3d; 0d for the same tick): {', '.join(missing)}"
        )


class SegmentsFile(StrictModel):
    """rules/segments.yaml: named conditions reusable as ``segment: NAME``."""

    segments: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")], Condition]


def rule_schema(segments: bool = False) -> dict[str, Any]:
    """JSON Schema of a rule file (or of rules/segments.yaml), for editor autocompletion."""
    schema = (SegmentsFile if segments else Campaign).model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "nudge segments" if segments else "nudge campaign"
    if not segments:  # an editor can tell which is missing: actions or steps, schedule or trigger
        schema["allOf"] = [
            {"oneOf": [{"required": ["actions"]}, {"required": ["steps"]}]},
            {"anyOf": [{"required": ["schedule"]}, {"required": ["trigger"]}]},
        ]
    return schema
