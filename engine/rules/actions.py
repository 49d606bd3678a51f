"""A campaign's actions as pydantic models: messages (email, sms, webhook), coupons and tasks, and
the vocabulary that maps each YAML key to its model and each message to its channel."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from engine.core.channels import Channel
from engine.core.fields import COUPON_NAME_MAX, TASK_QUEUE_MAX, TEMPLATE_NAME_MAX
from engine.rules.base import StrictModel
from engine.rules.conditions import Condition
from engine.rules.problems import TAG_PREFIX
from engine.rules.types import Duration


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


# A subject, preheader or SMS text: a Jinja template, or a mapping of them by locale.
ByLocale = str | dict[str, str]


def _by_locale(value: ByLocale | None, what: str) -> ByLocale | None:
    if isinstance(value, dict) and "default" not in value:
        raise ValueError(f"{what} by locale needs a `default` entry for customers of any other locale")
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"{what} is empty")
    return value


class Variant(StrictModel):
    """One arm of an A/B test of an email's content."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", max_length=32, description="short name, recorded on the ledger row")
    weight: float = Field(gt=0, le=100, description="share of the targeted customers, in percent")
    template: str = Field(description="file in templates/")
    subject: ByLocale = Field(description="Jinja template for the subject line; or a mapping by locale")
    from_: str | None = Field(None, alias="from")

    @field_validator("template")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        return _inside_templates(value)

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: ByLocale) -> ByLocale:
        checked = _by_locale(value, "a subject")
        assert checked is not None
        return checked


class EmailSpec(StrictModel):
    template: str | None = Field(None, description="file in templates/, e.g. lapsed_buyers.html.j2")
    subject: ByLocale | None = Field(
        None, description="Jinja template for the subject line; or a mapping by locale, e.g. {default: ..., zh-CN: ...}"
    )
    preheader: ByLocale | None = Field(
        None, description="the line inboxes show after the subject (Jinja; or a mapping by locale)"
    )
    from_: str | None = Field(None, alias="from")
    when: Condition | None = None
    variants: list[Variant] | None = Field(
        None, min_length=2, description="A/B test: each customer gets one variant, by a stable hash"
    )

    @field_validator("template")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        return _inside_templates(value)

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: ByLocale | None) -> ByLocale | None:
        return _by_locale(value, "a subject")

    @field_validator("preheader")
    @classmethod
    def _preheader(cls, value: ByLocale | None) -> ByLocale | None:
        return _by_locale(value, "a preheader")

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

    def content(self, variant: str | None = None) -> tuple[str, ByLocale, str | None]:
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
    title: ByLocale = Field(description="Jinja template; or a mapping by the customer's locale")
    body: str | None = Field(None, description="Jinja template")
    due_in: Duration | None = None
    when: Condition | None = None

    @field_validator("title")
    @classmethod
    def _title(cls, value: ByLocale) -> ByLocale:
        checked = _by_locale(value, "a task title")
        assert checked is not None
        return checked


class SmsSpec(StrictModel):
    text: ByLocale = Field(
        description="Jinja template of the text; or a mapping by locale, e.g. {default: ..., zh-CN: ...}"
    )
    when: Condition | None = None

    @field_validator("text")
    @classmethod
    def _has_default(cls, value: ByLocale) -> ByLocale:
        if isinstance(value, str) and not value.strip():
            raise ValueError("an SMS needs a text")
        checked = _by_locale(value, "a text")
        assert checked is not None
        return checked


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
MESSAGE_CHANNEL: dict[type, Channel] = {
    EmailAction: Channel.EMAIL,
    SmsAction: Channel.SMS,
    WebhookAction: Channel.WEBHOOK,
}


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


def action_kind(action: Any) -> str:
    """The YAML key of an action item: email, sms, webhook, coupon or task."""
    return _KIND_OF[type(action)]


def action_channel(action: Any) -> Channel | None:
    """The channel of a message action; None for coupons and tasks."""
    return MESSAGE_CHANNEL.get(type(action))


def action_when(action: Any) -> Any:
    """The `when` condition of an action, whichever level it was written at."""
    return action.when if action.when is not None else action_spec(action).when
