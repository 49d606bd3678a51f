"""Formatting in the customer's language (Babel, CLDR data): the `money`, `date`, `number` and
`full_name` filters, and `Money`, the amount a coupon takes off, which prints as money by itself.

The locale is the render context's `locale` (the customer's, else `locales.default`); the
currency and the time zone of customers without one come from config, kept on the environment."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from engine.core.locales import chain, pick, rendering

# Babel (CLDR data) loads when a filter first formats something: the workspace loader needs this
# module's settings, and a dry run or validate that renders nothing need not pay for Babel.
if TYPE_CHECKING:
    from babel import Locale

# Languages that write the family name first (SPEC: zh, ja, ko).
FAMILY_FIRST = frozenset({"zh", "ja", "ko"})
# Han, kana and Hangul: names in these scripts are written without a space between the parts.
_EAST_ASIAN = re.compile(r"^[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+$")


@dataclass(frozen=True)
class RenderSettings:
    """What config.yaml says about rendering, kept on the workspace's Jinja environment."""

    default_locale: str = "en"
    supported: tuple[str, ...] = ()  # the locales the shop writes in (config `locales.supported`)
    currency: str = "USD"
    zone: str = "UTC"  # customers without a time zone
    inline_css: bool = True


DEFAULT_SETTINGS = RenderSettings()


def settings_of(env: jinja2.Environment) -> RenderSettings:
    return getattr(env, "settings", DEFAULT_SETTINGS)


def rendering_locale(customer_locale: str | None, settings: RenderSettings) -> str:
    """Templates' `locale`: what the customer reads, as `engine.core.locales.rendering` says."""
    return rendering(customer_locale, settings.supported, settings.default_locale)


class Money(float):
    """An amount in a currency: a number in arithmetic and comparisons, money when printed."""

    currency: str

    def __new__(cls, amount: float, currency: str) -> Money:
        made = super().__new__(cls, amount)
        made.currency = currency
        return made


@functools.lru_cache(maxsize=256)
def babel_locale(tag: str | None, default: str = "en") -> Locale:
    """The CLDR locale for a customer's tag through the one chain (`zh-TW` → `zh` → default → en)."""
    from babel import Locale, UnknownLocaleError

    for candidate in [*chain(tag, default), "en"]:
        try:
            return Locale.parse(candidate, sep="-")
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return Locale("en")


def _locale(context: Mapping[str, Any]) -> Locale:
    settings = settings_of(context.environment) if hasattr(context, "environment") else DEFAULT_SETTINGS
    return babel_locale(context.get("locale"), settings.default_locale)


def _number(value: Any, name: str) -> Decimal | float | int:
    """A number to format; a numeric string (an event property from CSV) counts as one."""
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except ArithmeticError:
            raise TypeError(f"{name} needs a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise TypeError(f"{name} needs a number, got {type(value).__name__}")
    return value


@jinja2.pass_context
def money(context: Any, value: Any, currency: str | None = None) -> str:
    """`{{ 20 | money }}` in the workspace currency, `money("USD")` in another: ¥20.00, 20,00 €."""
    from babel.numbers import format_currency

    settings = settings_of(context.environment)
    code = currency or getattr(value, "currency", None) or settings.currency
    return format_currency(_number(value, "money"), code, locale=_locale(context))


@jinja2.pass_context
def number(context: Any, value: Any, format: str | None = None) -> str:
    """`{{ 1234.5 | number }}`: 1,234.5 in en, 1.234,5 in de."""
    from babel.numbers import format_decimal

    return format_decimal(_number(value, "number"), format=format, locale=_locale(context))


def _zone(context: Any) -> ZoneInfo:
    customer = context.get("customer")
    own = customer.get("timezone") if isinstance(customer, Mapping) else None
    for name in (own, settings_of(context.environment).zone):
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue  # a zone the store holds that this machine does not know: the workspace's
    return ZoneInfo("UTC")


@jinja2.pass_context
def date_filter(context: Any, value: Any, format: str = "medium") -> str:
    """`{{ d | date }}`, `date("long")` or a CLDR pattern (`date("MMMM d")`); a time is shown
    on the customer's calendar day, in their time zone (config's `timezone` when they have none)."""
    from babel.dates import format_date

    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        value = aware.astimezone(_zone(context)).date()
    if not isinstance(value, date):
        raise TypeError(f"date needs a date or a time, got {type(value).__name__}")
    return format_date(value, format=format, locale=_locale(context))


@jinja2.pass_context
def datetime_filter(context: Any, value: Any, format: str = "medium") -> str:
    """`{{ t | datetime }}`: date and time of day in the customer's time zone."""
    from babel.dates import format_datetime

    if not isinstance(value, datetime):
        raise TypeError(f"datetime needs a time, got {type(value).__name__}")
    aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    return format_datetime(aware, format=format, tzinfo=_zone(context), locale=_locale(context))


@jinja2.pass_context
def full_name(context: Any, person: Any) -> str:
    """`{{ customer | full_name }}`: given name first, but family name first in zh, ja and ko
    (王小明, Wang Xiaoming); whichever part there is when one is missing."""
    if not isinstance(person, Mapping):
        raise TypeError(f"full_name needs a customer, got {type(person).__name__}")
    given = str(person.get("first_name") or "").strip()
    family = str(person.get("last_name") or "").strip()
    if _locale(context).language not in FAMILY_FIRST:
        return " ".join(p for p in (given, family) if p)
    joiner = "" if _EAST_ASIAN.match(family + given) else " "
    return joiner.join(p for p in (family, given) if p)


def direction(tag: Any) -> str:
    """`{{ locale | direction }}`: rtl for Arabic, Hebrew, Persian…; ltr otherwise (`dir=`)."""
    order = babel_locale(str(tag) if tag else None).character_order
    return "rtl" if order == "right-to-left" else "ltr"


@jinja2.pass_context
def localized(context: Any, by_locale: Any) -> Any:
    """`{{ {"default": "Hello", "zh-CN": "您好"} | localized }}`: the entry for the customer's
    locale, through the one resolver (a layout's footer in the customer's language)."""
    if not isinstance(by_locale, Mapping) or "default" not in by_locale:
        raise TypeError("localized needs a mapping by locale with a `default` entry")
    return pick(by_locale, context.get("locale"), settings_of(context.environment).default_locale)


@jinja2.pass_context
def finalize(context: Any, value: Any) -> Any:
    """What `{{ … }}` prints: a coupon's amount as money in the customer's locale."""
    if isinstance(value, Money):
        return money(context, value)
    return value


FILTERS = {
    "money": money,
    "number": number,
    "date": date_filter,
    "datetime": datetime_filter,
    "full_name": full_name,
    "direction": direction,
    "localized": localized,
}
