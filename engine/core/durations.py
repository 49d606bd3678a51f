"""Durations as marketers write them: ``15m``, ``24h``, ``90d``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

DURATION_PATTERN = r"^\s*(\d+)\s*(s|m|h|d|w)\s*$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: object) -> timedelta:
    """Parse ``"90d"`` into a timedelta; raise ValueError with a readable message."""
    if isinstance(text, timedelta):
        return text
    if not isinstance(text, str):
        raise ValueError(f"expected a duration like 15m, 24h, 90d or 2w, got {text!r}")
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit s, m, h, d or w (e.g. 90d)")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(**{_UNITS[unit]: amount})


def format_duration(delta: timedelta) -> str:
    """Inverse of parse_duration for whole units (used in messages and explain output)."""
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return "0d"
