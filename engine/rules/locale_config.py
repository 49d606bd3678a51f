"""config.yaml's `locales` (the language of customers without one, the languages the shop writes
in) and `currency` (coupons' `amount_off` and the `money` filter's default), checked against CLDR."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from engine.core.locales import supported as served_in
from engine.rules.base import StrictModel

# Any currency CLDR knows is accepted; the code must still be the ISO 4217 shape.
CURRENCY_PATTERN = r"^[A-Z]{3}$"


def known_locale(tag: str) -> str:
    """A BCP 47 tag Babel (CLDR) can format for, as written; ValueError naming it otherwise."""
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(tag.replace("_", "-"), sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        raise ValueError(f"unknown locale {tag!r}: use a BCP 47 tag such as en, en-US, de or zh-CN") from None
    return tag


class LocalesConfig(StrictModel):
    default: str = Field("en", description="the locale of customers without one (BCP 47, e.g. en or zh-CN)")
    supported: list[str] = Field(
        default_factory=list,
        description="the locales the shop writes in, e.g. [en, zh-CN]: validate renders each, the dry run "
        "counts the targeted by them",
    )

    @field_validator("default")
    @classmethod
    def _default_known(cls, value: str) -> str:
        return known_locale(value)

    @field_validator("supported")
    @classmethod
    def _supported_known(cls, value: list[str], info: ValidationInfo) -> list[str]:
        checked = [known_locale(tag) for tag in value]
        # The default is always served: say so once rather than make every list repeat it.
        default = info.data.get("default")
        if checked and default and default.lower() not in {tag.lower() for tag in checked}:
            checked.insert(0, default)
        return checked

    def served(self, locale: str | None) -> str:
        """The locale a customer of `locale` is served in: one of `supported` (when given), else
        their own tag, else the default."""
        if self.supported:
            return served_in(locale, self.supported, self.default)
        return locale or self.default


def known_currency(code: str) -> str:
    """An ISO 4217 code CLDR has a name for; ValueError otherwise."""
    from babel.numbers import get_currency_name

    if get_currency_name(code, locale="en") == code:  # CLDR's answer for a code it does not know
        raise ValueError(f"unknown currency {code!r}: use an ISO 4217 code such as CNY, EUR or USD")
    return code
