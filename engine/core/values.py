"""Scalar values as people write them in files and rules: booleans, numbers and ISO 8601 instants,
each within what both databases store and what date arithmetic survives."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from engine.core.clock import naive_utc

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}

# Numbers both stores keep and compare exactly: PostgreSQL reads JSON numbers as double precision
# (a 401-digit integer fails every query that reads it), SQLite cannot keep Infinity in JSON.
# 1e15 keeps every integer exact in a double, and money to the cent.
MAX_NUMBER = 10**15
# Instants the store keeps: years 1900-2200, so that an instant plus or minus any duration nudge
# takes (at most 100 years) is still a date.
EARLIEST = datetime(1900, 1, 1)
LATEST = datetime(2200, 12, 31, 23, 59, 59, 999999)


def number_problem(value: Any) -> str | None:
    """Why a number cannot be stored or compared (None for anything else, and for a good number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if abs(value) > MAX_NUMBER:
        return f"{shown_number(value)} is beyond ±1e15"
    return None


def shown_number(value: int | float) -> str:
    """A number for a message, without printing thousands of digits."""
    if isinstance(value, int) and value.bit_length() > 64:
        try:
            return f"an integer of {len(str(abs(value)))} digits"
        except ValueError:  # more digits than Python converts to text
            return "an integer of thousands of digits"
    return repr(value)


def instant_problem(moment: datetime, name: str, latest: datetime = LATEST) -> str | None:
    """Why a naive-UTC instant is out of range (None when it is in range)."""
    if moment < EARLIEST:
        return f"{name}: {moment.isoformat()} is before 1900-01-01"
    if moment > latest:
        if latest == LATEST:
            return f"{name}: {moment.isoformat()} is after the year 2200"
        return f"{name}: {moment.isoformat()} is more than 24 h in the future"
    return None


def parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name}: expected true/false/1/0/yes/no, got {value!r}")


def parse_instant(value: Any, name: str) -> datetime:
    """ISO 8601 → naive UTC (no offset means UTC), the store's single time representation."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = value.strip() if isinstance(value, str) else str(value)
        if text[-1:] in ("Z", "z") and "T" in text:  # the common case, already UTC: no conversion
            try:
                moment = datetime.fromisoformat(text[:-1])
            except ValueError:
                pass
            else:
                if moment.tzinfo is None:
                    return moment
        try:
            moment = datetime.fromisoformat(text if text[-1:] != "z" else text[:-1] + "Z")
        except ValueError:
            raise ValueError(f"{name}: expected an ISO 8601 time like 2026-05-01T09:30:00Z, got {value!r}") from None
    try:
        return naive_utc(moment)
    except OverflowError:
        raise ValueError(f"{name}: {value!r} is outside the range of times nudge can store") from None
