"""How a customer is reached and what they agreed to, as an imported row gives it: the phone number
in E.164, the locale as a BCP 47 tag, and the choice per subscription topic (`topics.NAME`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers

from engine.core.values import parse_bool

TOPIC_COLUMN = "topics."  # a customer row's `topics.NAME` column: their choice for topic NAME

# BCP 47 (RFC 5646) without the grandfathered tags: language (2-3 letters), script (4 letters),
# region (2 letters or 3 digits), variants, extensions, private use. Strict enough that `zh_CN`,
# `english` or `en-` are refused at import rather than matching no template later.
_LOCALE = re.compile(
    r"^(?P<language>[A-Za-z]{2,3})"
    r"(?:-(?P<script>[A-Za-z]{4}))?"
    r"(?:-(?P<region>[A-Za-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"
    r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"
    r"(?:-[Xx](?:-[A-Za-z0-9]{1,8})+)?$"
)
LOCALE_MAX = 35  # customers.locale


@dataclass(frozen=True)
class KnownTopics:
    """The subscription topics of the workspace's config.yaml (the implicit `marketing` when it
    names none), as the importer checks `topics.NAME` columns against them. Plain names: ingest
    sits beside the rules in the flow and does not read the config itself."""

    names: tuple[str, ...] = ()
    required: frozenset[str] = frozenset()

    def problem(self, name: str) -> str | None:
        if name in self.names:
            return None
        known = ", ".join(self.names) if self.names else "none"
        return f"unknown topic {name!r}: the topics in config.yaml are {known}"


def phone_e164(value: Any, country: str | None) -> str:
    """A phone number in E.164 (`+8613800138000`), read with the row's country as the region of a
    number written without its country code; a ValueError if it is not a valid number."""
    if isinstance(value, (dict, list, bool)):
        raise ValueError(f"phone: expected text, got {type(value).__name__}")
    text = str(value).strip()
    number = _e164(text, country)
    if number is None:
        where = f" for {country}" if country and not text.startswith("+") else ""
        hint = "" if country or text.startswith("+") else " (no country: write it as +CC… or give the row a country)"
        raise ValueError(f"phone {text[:40]!r}: not a valid number{where}{hint}")
    return number


# The phone library costs 20-35 µs a number; a file often repeats one (a shared office or shop
# line, a household), so each (text, region) is read once while it stays among the recent ones.
@lru_cache(maxsize=16_384)
def _e164(text: str, country: str | None) -> str | None:
    """E.164 for the text, or None if it is not a valid number (for `country`)."""
    try:
        number = phonenumbers.parse(text[:64], country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def locale_tag(value: Any) -> str:
    """A BCP 47 tag in its conventional case (`zh-Hant-TW`, `en-US`), or a ValueError."""
    text = value.strip() if isinstance(value, str) else None
    found = _LOCALE.match(text) if text and len(text) <= LOCALE_MAX else None
    if found is None:
        hint = f" (did you mean {text.replace('_', '-')!r}?)" if text and "_" in text else ""
        raise ValueError(f"locale: {value!r} is not a BCP 47 language tag like en-US or zh-CN{hint}")
    # Case carries no meaning in BCP 47, but the locale resolver compares tags as text.
    shaped = found["language"].lower()
    if found["script"]:
        shaped += "-" + found["script"].title()
    if found["region"]:
        shaped += "-" + found["region"].upper()
    last = max(found.end(group) for group in ("language", "script", "region"))
    return shaped + found.string[last:].lower()


def topic_choice(key: str, value: Any, topics: KnownTopics) -> tuple[str, bool] | None:
    """(topic, subscribed) for a `topics.NAME` column; None for an empty cell (no choice made)."""
    name = key[len(TOPIC_COLUMN) :]
    reason = topics.problem(name)
    if reason is not None:
        raise ValueError(f"{key}: {reason}")
    if value is None or value == "":
        return None
    subscribed = parse_bool(value, key)
    if not subscribed and name in topics.required:
        raise ValueError(f"{key}: {name!r} is a required topic (config.yaml): it cannot be left")
    return name, subscribed
