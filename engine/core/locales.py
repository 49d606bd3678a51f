"""The one locale resolver: a customer's BCP 47 tag → the chain of tags to try, most specific
first, ending with the workspace default (`zh-Hant-TW` → `zh-Hant`, `zh`, then `en`). Templates,
subjects, SMS texts, the preview and validate all resolve through it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def template_names(name: str, locale: str | None, default: str = "en") -> list[str]:
    """The files to try for template `name`, most specific first, ending with `name` itself:
    `welcome.html.j2` for zh-TW → `welcome.zh-TW.html.j2`, `welcome.zh.html.j2`,
    `welcome.en.html.j2`, `welcome.html.j2` (the tag goes before the first dot of the file name)."""
    folder, slash, base = name.rpartition("/")
    stem, dot, suffix = base.partition(".")
    if not dot:
        return [name]
    return [f"{folder}{slash}{stem}.{tag}.{suffix}" for tag in chain(locale, default)] + [name]


def supported(locale: str | None, choices: Sequence[str], default: str = "en") -> str:
    """The one of `choices` a customer of `locale` is served in (the dry run's count by locale):
    the first tag of the chain among them (case-insensitive), else `default`."""
    lowered = {choice.lower(): choice for choice in choices}
    for tag in chain(locale, default):
        if tag.lower() in lowered:
            return lowered[tag.lower()]
    return default


def rendering(locale: str | None, choices: Sequence[str], default: str = "en") -> str:
    """The locale a customer's messages are written and formatted in: their own tag when the shop
    writes in its language (en-GB for English: British dates), else the one of `choices` their
    chain reaches (ja-JP in an English-and-Chinese shop: en). Without `choices`, their own tag."""
    if not locale:
        return default
    if not choices:
        return locale
    served = supported(locale, choices, default)
    return locale if served.lower() in {tag.lower() for tag in chain(locale, locale)} else served
