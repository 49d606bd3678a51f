"""config.yaml's settings for channels beyond email and for consent: `sms`, `topics`, `consent`,
and the frequency cap per channel."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from connectors.registry import Group, available
from engine.core.channels import Channel
from engine.rules.base import StrictModel
from engine.rules.types import Duration

# Without `topics:` in config, every campaign belongs to this one implicit topic (SPEC).
IMPLICIT_TOPIC = "marketing"
TOPIC_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"


class FrequencyCap(StrictModel):
    max: int = Field(ge=0)
    per: Duration


class Caps(StrictModel):
    """Marketing messages per customer within a window: per channel, and `all` across channels.
    The old shape `{max, per}` caps email alone, as it always did."""

    email: FrequencyCap | None = None
    sms: FrequencyCap | None = None
    webhook: FrequencyCap | None = None
    all: FrequencyCap | None = None

    @model_validator(mode="before")
    @classmethod
    def _email_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict) and ("max" in value or "per" in value):
            return {"email": value}
        return value

    def of(self, channel: Channel) -> FrequencyCap | None:
        caps: dict[Channel, FrequencyCap | None] = {
            Channel.EMAIL: self.email,
            Channel.SMS: self.sms,
            Channel.WEBHOOK: self.webhook,
        }
        return caps[channel]

    def applies_to(self, channels: tuple[Channel, ...]) -> bool:
        """Does any cap count messages on these channels?"""
        return bool(channels) and (self.all is not None or any(self.of(c) is not None for c in channels))


class SmsOutboxConfig(StrictModel):
    dir: str = "sms-outbox"
    fsync: bool = True


class TwilioConfig(StrictModel):
    account_sid_env: str = Field("TWILIO_ACCOUNT_SID", pattern=r"^[A-Z_][A-Z0-9_]*$")
    auth_token_env: str = Field("TWILIO_AUTH_TOKEN", pattern=r"^[A-Z_][A-Z0-9_]*$")
    messaging_service_sid_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    status_callback_url: str | None = Field(
        None, description="public https:// URL of `nudge serve`'s /twilio/status, for delivery receipts"
    )
    base_url: str | None = Field(None, description="another API host (a test server); default Twilio's own")
    timeout: float = Field(30.0, gt=0, le=600)


class SmsConfig(StrictModel):
    connector: str = "outbox"
    from_: str | None = Field(None, alias="from", description="the sending number (E.164) or sender id")
    messaging_service_sid_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    outbox: SmsOutboxConfig = SmsOutboxConfig()
    twilio: TwilioConfig = TwilioConfig()

    @field_validator("connector")
    @classmethod
    def _known(cls, value: str) -> str:
        known = available(Group.SMS)
        if value not in known:
            raise ValueError(f"unknown connector {value!r}: available are {', '.join(sorted(known))}")
        return value


class Topic(StrictModel):
    label: str | dict[str, str] = Field(description="what the preference page shows; a mapping by locale allowed")
    required: bool = Field(False, description="order and account service: cannot be left, never capped")

    def label_for(self, locale: str | None, default: str) -> str:
        if isinstance(self.label, str):
            return self.label
        for tag in (locale, (locale or "").split("-")[0], default, "en"):
            if tag and tag in self.label:
                return self.label[tag]
        return next(iter(self.label.values()), "")


class ConsentConfig(StrictModel):
    double_opt_in: bool = Field(
        False, description="an email address counts as opted in once the customer confirmed it (/confirm/TOKEN)"
    )


def check_topics(topics: dict[str, Topic]) -> dict[str, Topic]:
    import re

    for name in topics:
        if not re.fullmatch(TOPIC_PATTERN, name):
            raise ValueError(f"topic name {name!r}: use lowercase letters, digits, - and _ (e.g. promotions)")
    return topics
