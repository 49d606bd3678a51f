"""A campaign file as pydantic models: who (audience), when (schedule), what (actions)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from engine.core.channels import Channel
from engine.core.fields import CAMPAIGN_NAME_MAX, COUPON_NAME_MAX, MAX_ACTIONS, TASK_QUEUE_MAX, TEMPLATE_NAME_MAX
from engine.rules.base import StrictModel
from engine.rules.conditions import Condition, FollowedBy
from engine.rules.problems import TAG_PREFIX
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


def _inside_templates(value: str | None) -> str | None:
    if value is None:
        return value
    if len(value) > TEMPLATE_NAME_MAX:
        raise ValueError(f"template name is {len(value)} characters long: at most {TEMPLATE_NAME_MAX}")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value or not value.strip():
        raise ValueError(
            f"template {value!r} must name a file inside templates/ (no absolute path, no '..'), "
            "e.g. lapsed_buyers.html.j2"
        )
    return value


class Variant(StrictModel):
    """One arm of an A/B test of an email's content."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", max_length=32, description="short name, recorded on the ledger row")
    weight: float = Field(gt=0, le=100, description="share of the targeted customers, in percent")
    template: str = Field(description="file in templates/")
    subject: str = Field(description="Jinja template for the subject line")
    from_: str | None = Field(None, alias="from")

    @field_validator("template")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        return _inside_templates(value)


class EmailSpec(StrictModel):
    template: str | None = Field(None, description="file in templates/, e.g. lapsed_buyers.html.j2")
    subject: str | None = Field(None, description="Jinja template for the subject line")
    from_: str | None = Field(None, alias="from")
    when: Condition | None = None
    variants: list[Variant] | None = Field(
        None, min_length=2, description="A/B test: each customer gets one variant, by a stable hash"
    )

    @field_validator("template")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        return _inside_templates(value)

    @model_validator(mode="after")
    def _content_once(self) -> EmailSpec:
        if self.variants is None:
            if self.template is None or self.subject is None:
                raise ValueError("an email needs template and subject (or variants, each with both)")
            return self
        if self.template is not None or self.subject is not None:
            raise ValueError("give template and subject inside each variant, not beside variants")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {', '.join(names)}")
        if abs(sum(v.weight for v in self.variants) - 100) > 1e-9:
            raise ValueError(f"variant weights must add up to 100, got {sum(v.weight for v in self.variants):g}")
        return self

    def content(self, variant: str | None = None) -> tuple[str, str, str | None]:
        """(template, subject, from) of the variant named (the only content when there are none)."""
        if self.variants is None:
            assert self.template is not None and self.subject is not None
            return self.template, self.subject, self.from_
        chosen = next((v for v in self.variants if v.name == variant), self.variants[0])
        return chosen.template, chosen.subject, chosen.from_ or self.from_


class CouponSpec(StrictModel):
    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$", max_length=COUPON_NAME_MAX, description="name for templates: coupons.NAME"
    )
    percent_off: float | None = Field(None, gt=0, le=100)
    amount_off: float | None = Field(None, gt=0, le=1e15)
    valid_for: Duration
    prefix: str | None = Field(None, pattern=r"^[A-Z0-9]{1,12}$")
    when: Condition | None = None

    @model_validator(mode="after")
    def _one_value(self) -> CouponSpec:
        if (self.percent_off is None) == (self.amount_off is None):
            raise ValueError("give exactly one of percent_off or amount_off")
        return self


class TaskSpec(StrictModel):
    queue: str = Field(min_length=1, max_length=TASK_QUEUE_MAX)
    title: str = Field(min_length=1, description="Jinja template")
    body: str | None = Field(None, description="Jinja template")
    due_in: Duration | None = None
    when: Condition | None = None


class SmsSpec(StrictModel):
    text: str | dict[str, str] = Field(
        description="Jinja template of the text; or a mapping by locale, e.g. {default: ..., zh-CN: ...}"
    )
    when: Condition | None = None

    @field_validator("text")
    @classmethod
    def _has_default(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(value, dict) and "default" not in value:
            raise ValueError("a text by locale needs a `default` entry for customers of any other locale")
        if isinstance(value, str) and not value.strip():
            raise ValueError("an SMS needs a text")
        return value


class WebhookSpec(StrictModel):
    url_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$", description="environment variable holding the URL to POST to (a secret)"
    )
    body: str = Field(description="file in templates/ rendering the JSON body, e.g. vip_followup.json.j2")
    when: Condition | None = None

    @field_validator("body")
    @classmethod
    def _inside(cls, value: str) -> str:
        checked = _inside_templates(value)
        assert checked is not None
        return checked


class EmailAction(StrictModel):
    email: EmailSpec
    when: Condition | None = None


class CouponAction(StrictModel):
    coupon: CouponSpec
    when: Condition | None = None


class TaskAction(StrictModel):
    task: TaskSpec
    when: Condition | None = None


class SmsAction(StrictModel):
    sms: SmsSpec
    when: Condition | None = None


class WebhookAction(StrictModel):
    webhook: WebhookSpec
    when: Condition | None = None


# The action vocabulary: its YAML key → model. The key is also the model's one field.
ACTION_KINDS: dict[str, type[StrictModel]] = {
    "email": EmailAction,
    "sms": SmsAction,
    "webhook": WebhookAction,
    "coupon": CouponAction,
    "task": TaskAction,
}
_KIND_OF: dict[type, str] = {model: kind for kind, model in ACTION_KINDS.items()}
# Actions that are messages to the customer, and their channel.
MESSAGE_CHANNEL: dict[type, Channel] = {EmailAction: Channel.EMAIL, SmsAction: Channel.SMS, WebhookAction: Channel.WEBHOOK}


def _action_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((TAG_PREFIX + kind for kind in ACTION_KINDS if kind in value), None)
    kind = _KIND_OF.get(type(value))
    return TAG_PREFIX + kind if kind else None


Action = Annotated[
    Annotated[EmailAction, Tag(TAG_PREFIX + "email")]
    | Annotated[SmsAction, Tag(TAG_PREFIX + "sms")]
    | Annotated[WebhookAction, Tag(TAG_PREFIX + "webhook")]
    | Annotated[CouponAction, Tag(TAG_PREFIX + "coupon")]
    | Annotated[TaskAction, Tag(TAG_PREFIX + "task")],
    Discriminator(
        _action_kind,
        custom_error_type="action_kind",
        custom_error_message="an action needs one of: " + ", ".join(ACTION_KINDS),
    ),
]


def action_spec(action: Any) -> Any:
    """The inner spec of an action item (EmailSpec, SmsSpec, WebhookSpec, CouponSpec or TaskSpec)."""
    return getattr(action, _KIND_OF[type(action)])


def action_channel(action: Any) -> Channel | None:
    """The channel of a message action; None for coupons and tasks."""
    return MESSAGE_CHANNEL.get(type(action))


def action_when(action: Any) -> Any:
    """The `when` condition of an action, whichever level it was written at."""
    return action.when if action.when is not None else action_spec(action).when


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
