"""Scalar values as people write them in files and rules: booleans and ISO 8601 instants."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.core.clock import naive_utc

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


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
