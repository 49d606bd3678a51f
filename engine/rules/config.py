"""config.yaml → Config. Secrets are named by environment variable, never stored in the file."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from connectors.registry import Group, available
from engine.core.errors import Problem, UserInputError
from engine.rules.base import StrictModel
from engine.rules.channels_config import IMPLICIT_TOPIC, Caps, ConsentConfig, SmsConfig, Topic, check_topics
from engine.rules.locale_config import CURRENCY_PATTERN, LocalesConfig, known_currency
from engine.rules.problems import validate
from engine.rules.types import Duration, Percent
from engine.rules.ui_config import UiConfig
from engine.rules.yamlsource import read_yaml

# Keys whose values are credentials, wherever they appear (a webhook's Authorization header too).
_SECRET_KEYS = re.compile(r"(api[_-]?key|password|passwd|secret|token|authorization|credentials?)$", re.IGNORECASE)


class OutboxConfig(StrictModel):
    dir: str = "outbox"
    # Flush each file and the folder to disk before the message counts as sent (a power loss then
    # leaves no torn file and no lost one). Off only for a throwaway outbox on a RAM disk.
    fsync: bool = True


class SmtpConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = 25
    username: str | None = None
    starttls: bool = False
    ssl: bool = False
    timeout: float = 30.0


class SendgridConfig(StrictModel):
    sandbox_mode: bool = False
    webhook_public_key: str | None = Field(
        None, description="Event Webhook verification key (public; from SendGrid's Mail Settings)"
    )
    host: str | None = None
    concurrency: int = Field(4, ge=1, le=64)
    rate_per_second: float | None = Field(None, gt=0)
    timeout: float = 30.0

    @field_validator("webhook_public_key")
    @classmethod
    def _ecdsa_key(cls, value: str | None) -> str | None:
        """SendGrid signs its events with ECDSA: anything else would fail every webhook request."""
        if value is None:
            return value
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        try:
            key = load_der_public_key(base64.b64decode(value, validate=True))
        except (ValueError, TypeError, binascii.Error):
            key = None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(
                "webhook_public_key must be the ECDSA verification key from SendGrid's Mail Settings "
                "(base64, as shown there)"
            )
        return value


# Where `nudge serve` listens by default: good enough for .eml files a marketer opens locally.
LOCAL_UNSUBSCRIBE = "http://127.0.0.1:8025/unsubscribe"


def _registered(group: Group, name: str) -> str:
    known = available(group)
    if name not in known:
        raise ValueError(f"unknown connector {name!r}: available are {', '.join(sorted(known))}")
    return name


def public_https_problem(url: str) -> str | None:
    """Why customers could not follow this link, or None."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host:
        return f"must be a public https:// URL, got {url!r}"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if (
        host == "localhost"
        or host.endswith(".localhost")
        or (address is not None and (address.is_loopback or address.is_private or address.is_unspecified))
    ):
        return f"{url!r} points at this machine or a private network: customers cannot reach it"
    return None


class EmailConfig(StrictModel):
    connector: str = "outbox"
    from_: str = Field("Shop <hello@example.com>", alias="from")
    outbox: OutboxConfig = OutboxConfig()
    smtp: SmtpConfig = SmtpConfig()
    sendgrid: SendgridConfig = SendgridConfig()
    unsubscribe_url: str | None = Field(
        None,
        description="public https:// base URL of `nudge serve` as customers reach it; "
        "required for every connector but the outbox",
    )
    inline_css: bool = Field(
        True, description="move <style> rules into style attributes (Gmail drops <style>); media queries stay"
    )

    @field_validator("connector")
    @classmethod
    def _known_connector(cls, value: str) -> str:
        return _registered(Group.EMAIL, value)

    @model_validator(mode="after")
    def _reachable_unsubscribe(self) -> EmailConfig:
        # A link to 127.0.0.1 in a real customer's inbox is a dead link, and bulk-sender rules
        # require a working one: refuse to send through a real connector without it.
        if self.connector == "outbox":
            return self
        if self.unsubscribe_url is None:
            raise ValueError(
                f"unsubscribe_url is required to send through {self.connector!r}: the public https:// address "
                "where `nudge serve` answers, e.g. unsubscribe_url: https://shop.example/unsubscribe"
            )
        problem = public_https_problem(self.unsubscribe_url)
        if problem:
            raise ValueError(f"unsubscribe_url {problem}")
        return self

    @property
    def unsubscribe_base(self) -> str:
        return self.unsubscribe_url or LOCAL_UNSUBSCRIBE


class TasksConfig(StrictModel):
    sink: str = "store"
    csv: dict[str, str] = Field(default_factory=lambda: {"path": "tasks.csv"})
    webhook: dict[str, Any] = Field(default_factory=dict)

    @field_validator("sink")
    @classmethod
    def _known_sink(cls, value: str) -> str:
        return _registered(Group.TASK_SINKS, value)


def _clock(value: Any) -> time:
    if isinstance(value, int):  # YAML reads 21:00 unquoted as sexagesimal minutes
        return time(value // 60 % 24, value % 60)
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f'expected a time like "21:00", got {value!r}') from None


class QuietHours(StrictModel):
    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> time:
        return _clock(value)


class RfmSettings(StrictModel):
    scores: int = Field(5, ge=2, le=10, description="quantile scores per dimension (5: quintiles)")


class TierSettings(StrictModel):
    a: float = Field(0.8, gt=0, lt=1, description="tier A: the top customers who make this share of revenue")
    b: float = Field(0.95, gt=0, lt=1, description="tier B: up to this cumulative share; the rest is C")


class LifecycleSettings(StrictModel):
    at_risk_after: Duration = Field(timedelta(days=90), description="no purchase for this long: at_risk")
    lapsed_after: Duration = Field(timedelta(days=180), description="no purchase for this long: lapsed")
    loyal_orders: int = Field(5, ge=2, description="this many purchases or more: loyal")


class ChurnSettings(StrictModel):
    recent: Duration = Field(timedelta(days=90), description="the recent window compared with the baseline")
    baseline: Duration = Field(timedelta(days=365), description="history before `recent` back to this far")


class MetricsConfig(StrictModel):
    revenue_property: str = "amount"
    rfm: RfmSettings = RfmSettings()
    value_tiers: TierSettings = TierSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    churn: ChurnSettings = ChurnSettings()


class DeliveryConfig(StrictModel):
    batch_size: int = Field(
        500,
        ge=1,
        le=10_000,
        description="messages claimed and rendered together",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description=(
            "OS processes that send one occurrence's messages at once, each claiming its own batches "
            "(a customer is still sent to once); up to the number of CPU cores helps, since rendering "
            "is CPU work. A worker that dies fails the run; the next run settles what it held"
        ),
    )
    lease: Duration = Field(
        timedelta(minutes=5),
        description=(
            "how long a daemon that stops answering (paused, hung, cut off) keeps its occurrence before "
            "another daemon takes it over; renewed at every hand-off, so only a stall this long matters"
        ),
    )

    @field_validator("lease")
    @classmethod
    def _lease_bounds(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=24):
            raise ValueError("delivery.lease must be between 1s and 24h")
        return value


EXCLUSIVE_GROUP_MAX = 64  # deliveries.exclusive_group


class Limits(StrictModel):
    frequency_cap: Caps | None = Field(
        None, description="{max, per} for email, or per channel: {email: {max, per}, sms: ..., all: ...}"
    )
    quiet_hours: QuietHours | None = None
    global_holdout: Percent = Field(
        0.0, description="customers never contacted by any campaign, to measure the whole programme, e.g. 5%"
    )
    exclusive: dict[str, Duration] = Field(
        default_factory=dict,
        description="exclusive groups: at most one campaign of GROUP reaches a customer within DURATION, "
        "e.g. {winback: 60d}",
    )

    @field_validator("exclusive")
    @classmethod
    def _group_names(cls, groups: dict[str, Any]) -> dict[str, Any]:
        # The ledger keeps the group of each row (64 characters): a longer name would not fit.
        for name in groups:
            if len(name) > EXCLUSIVE_GROUP_MAX:
                raise ValueError(f"exclusive group name is {len(name)} characters long: at most {EXCLUSIVE_GROUP_MAX}")
        return groups


class Retention(StrictModel):
    events: Duration | None = Field(
        None, description="delete events older than this (the daemon applies it daily), e.g. 730d"
    )

    @field_validator("events")
    @classmethod
    def _long_enough(cls, value: Any) -> Any:
        if value is not None and value < timedelta(days=1):
            raise ValueError("retention.events must be at least 1d (audiences look back over events)")
        return value


class IngestConfig(StrictModel):
    write_key_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="the environment variable holding the write key for POST /v1/track|identify|batch",
    )


class Config(StrictModel):
    store: str = "sqlite:///nudge.db"
    timezone: str = "UTC"
    email: EmailConfig = EmailConfig()
    tasks: TasksConfig = TasksConfig()
    limits: Limits = Limits()
    delivery: DeliveryConfig = DeliveryConfig()
    metrics: MetricsConfig = MetricsConfig()
    retention: Retention = Retention()
    ingest: IngestConfig | None = None
    ui: UiConfig | None = None  # the dashboard on `nudge serve`
    sms: SmsConfig = SmsConfig()
    topics: dict[str, Topic] = Field(
        default_factory=dict,
        description="subscription topics a customer can leave one by one; the first is the default",
    )
    consent: ConsentConfig = ConsentConfig()
    locales: LocalesConfig = LocalesConfig()
    currency: str = Field(
        "USD", pattern=CURRENCY_PATTERN, description="ISO 4217: coupons' amount_off and the money filter's default"
    )

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return known_currency(value)

    @field_validator("topics")
    @classmethod
    def _topic_names(cls, value: dict[str, Topic]) -> dict[str, Topic]:
        return check_topics(value)

    @property
    def default_topic(self) -> str:
        """A campaign's topic when it names none: the first topic in config, else the implicit one."""
        return next(iter(self.topics), IMPLICIT_TOPIC)

    def topic_required(self, name: str) -> bool:
        topic = self.topics.get(name)
        return topic is not None and topic.required

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Paris") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _secret_problems(located: Any) -> list[Problem]:
    """A key that looks like a secret is refused: secrets belong in environment variables."""
    problems = []
    for loc, (line, col) in located.keys.items():
        name = loc[-1]
        if "headers_from_env" in loc:  # values there name environment variables: the safe way
            continue
        if isinstance(name, str) and _SECRET_KEYS.search(name):
            problems.append(
                Problem(
                    located.path,
                    line,
                    col,
                    f"{name!r}: secrets do not belong in config.yaml; set them in the environment "
                    + (
                        f"and name the variable: headers_from_env: {{{name}: HELPDESK_AUTH}}"
                        if "headers" in loc
                        else "(SENDGRID_API_KEY, NUDGE_SMTP_PASSWORD, NUDGE_SECRET)"
                    ),
                )
            )
    return problems


def load_config(workspace: Path) -> Config:
    """Load DIR/config.yaml (every key optional); raise UserInputError with located problems."""
    file = workspace / "config.yaml"
    if not file.exists():
        raise UserInputError(
            [Problem(str(file), None, None, "no config.yaml here: run `nudge init DIR` or pass --workspace")]
        )
    located = read_yaml(file)
    if located.data is None:
        located.data = {}
    problems = _secret_problems(located)
    if problems:
        raise UserInputError(problems)
    if not isinstance(located.data, dict):
        raise UserInputError([Problem(str(file), 1, 1, "config.yaml must be a mapping of settings")])
    return validate(Config, located)


def resolve_store_url(config: Config, workspace: Path) -> str:
    """Make a relative SQLite path relative to the workspace folder."""
    url = config.store
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
        return prefix + str((workspace / url[len(prefix) :]).resolve())
    return url
