"""Durations as marketers write them: ``15m``, ``24h``, ``90d``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

DURATION_PATTERN = r"^\s*(\d+)\s*(s|m|h|d|w)\s*$"
_DURATION_RE = re.compile(DURATION_PATTERN, re.ASCII)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# The longest duration anything takes: an instant plus or minus it stays a date (instants are
# bounded to 1900-2200 in the store), and a window that long already spans all of the data.
MAX_DURATION = timedelta(days=36525)


def parse_duration(text: object) -> timedelta:
    """Parse ``"90d"`` into a timedelta; raise ValueError with a readable message."""
    if isinstance(text, timedelta):
        return text
    if not isinstance(text, str):
        raise ValueError(f"expected a duration like 15m, 24h, 90d or 2w, got {text!r}")
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit s, m, h, d or w (e.g. 90d)")
    digits, unit = match.group(1), match.group(2)
    if len(digits) > 12 or int(digits) * _SECONDS[unit] > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text.strip()!r} is longer than 100 years (36525d), the longest nudge takes")
    return timedelta(**{_UNITS[unit]: int(digits)})


def format_duration(delta: timedelta) -> str:
    """Inverse of parse_duration for whole units (used in messages and explain output)."""
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return "0d"
