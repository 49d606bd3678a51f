"""The one locale resolver: a customer's BCP 47 tag → the chain of tags to try, most specific
first, ending with the workspace default (`zh-Hant-TW` → `zh-Hant`, `zh`, then `en`). Templates,
subjects, SMS texts, the preview and validate all resolve through it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")
DEFAULT_KEY = "default"  # a mapping by locale names its fallback entry so


def chain(locale: str | None, default: str = "en") -> list[str]:
    """The tags to try for `locale`, most specific first, then `default`'s chain; no repeats."""
    found: list[str] = []
    for tag in (locale, default):
        parts = (tag or "").replace("_", "-").split("-")
        for end in range(len(parts), 0, -1):
            candidate = "-".join(parts[:end])
            if candidate and candidate not in found:
                found.append(candidate)
    return found


def pick(by_locale: Mapping[str, T], locale: str | None, default: str = "en") -> T:
    """The entry of a mapping by locale for this customer: the first tag of the chain present
    (case-insensitive), else the `default` entry."""
    lowered = {key.lower(): value for key, value in by_locale.items()}
    for tag in chain(locale, default):
        if tag.lower() in lowered:
            return lowered[tag.lower()]
    return by_locale[DEFAULT_KEY]
