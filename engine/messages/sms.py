"""What a text message costs and how it ends: its encoding and segment count (GSM 03.38), and the
opt-out hint in the customer's language.

A text fits GSM-7 when every character is in the GSM 03.38 basic set or its extension table
(an extension character is sent as ESC + the character: two septets). Anything else, Chinese
included, makes the whole message UCS-2, counted in UTF-16 code units (an emoji is two).
One message holds 160 septets or 70 units; a longer text is split into segments that each lose
room to the concatenation header: 153 septets or 67 units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from engine.core.locales import DEFAULT_KEY, pick

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 basic character set, in table order (0x1B, the escape to the extension table, left out).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each costs two septets.
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE = {"GSM-7": 160, "UCS-2": 70}
PER_SEGMENT = {"GSM-7": 153, "UCS-2": 67}
# More would be refused by validate (SPEC): carriers reassemble at most about 10 reliably.
MAX_SEGMENTS = 10


@dataclass(frozen=True)
class SmsMeasure:
    encoding: Encoding
    segments: int
    characters: int  # what a reader counts: Unicode characters
    units: int  # what the network counts: septets (GSM-7) or UTF-16 code units (UCS-2)


def _costs(text: str) -> tuple[Encoding, list[int]]:
    """The encoding and, per character, how many septets or UTF-16 units it takes."""
    if all(c in GSM_BASIC or c in GSM_EXTENSION for c in text):
        return "GSM-7", [2 if c in GSM_EXTENSION else 1 for c in text]
    return "UCS-2", [2 if ord(c) > 0xFFFF else 1 for c in text]


def _segments(costs: list[int], per_segment: int) -> int:
    """Segments of a split message. A character is never cut across two segments (neither an
    escape and its character nor the two halves of a surrogate pair), so a segment may end a unit
    short and the count can exceed a plain division."""
    segments, used = 1, 0
    for cost in costs:
        if used + cost > per_segment:
            segments, used = segments + 1, 0
        used += cost
    return segments


def measure(text: str) -> SmsMeasure:
    """The encoding and segment count of a text as it will be sent (an empty text is still one message)."""
    encoding, costs = _costs(text)
    units = sum(costs)
    segments = 1 if units <= SINGLE[encoding] else _segments(costs, PER_SEGMENT[encoding])
    return SmsMeasure(encoding=encoding, segments=segments, characters=len(text), units=units)


# --- the opt-out hint -------------------------------------------------------------------------

# By language (the part of a locale before "-"); English when nothing in the chain has a hint.
OPT_OUT_HINTS = {
    "en": "Reply STOP to opt out",
    "zh": "回T退订",
    DEFAULT_KEY: "Reply STOP to opt out",
}

# Words that already tell the reader how to leave. Latin keywords must stand alone (not inside
# "STOPPED" or "Ltd"), with an ASCII-only boundary because Chinese characters count as word
# characters to \b and "回复TD退订" must still be found.
_CARRIES_OPT_OUT = re.compile(
    r"(?<![A-Za-z0-9])(?:STOP|TD)(?![A-Za-z0-9])|退订|回T",
    re.IGNORECASE,
)


def opt_out_hint(locale: str | None, default: str = "en") -> str:
    """The hint in the customer's language, through the one locale chain (`zh-TW`, `zh`, the
    workspace default), else English."""
    return pick(OPT_OUT_HINTS, locale, default)


def carries_opt_out(text: str) -> bool:
    """Does the text already say how to opt out (STOP, TD, 回T, 退订)?"""
    return _CARRIES_OPT_OUT.search(text) is not None


def with_opt_out(text: str, locale: str | None, default: str = "en") -> str:
    """The text ending with the opt-out hint, unless it already carries one (SPEC: every marketing SMS)."""
    if carries_opt_out(text):
        return text
    body = text.rstrip()
    if not body:
        return opt_out_hint(locale, default)
    # A text laid out in lines gets the hint on a line of its own; a one-liner keeps it inline.
    separator = "\n" if "\n" in body else " "
    return f"{body}{separator}{opt_out_hint(locale, default)}"
