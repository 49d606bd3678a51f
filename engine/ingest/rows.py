"""One imported row → store columns, or a ValueError saying what is wrong with it."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.core.fields import CUSTOMER_FIELDS
from engine.core.values import parse_bool, parse_instant

_INT = re.compile(r"^-?(0|[1-9]\d*)$")
_FLOAT = re.compile(r"^-?\d+\.\d+$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_ZONES: dict[str, bool] = {}


def parse_birthday(value: Any) -> tuple[str, int, int]:
    """``YYYY-MM-DD`` or ``--MM-DD`` → (normalised text, month, day)."""
    text = str(value).strip()
    try:
        if text.startswith("--"):
            month, day = int(text[2:4]), int(text[5:7])
            if len(text) != 7 or text[4] != "-":
                raise ValueError
            date(2000, month, day)  # a leap year, so --02-29 is valid
            return text, month, day
        parsed = date.fromisoformat(text)
        return parsed.isoformat(), parsed.month, parsed.day
    except ValueError:
        raise ValueError(f"birthday: expected YYYY-MM-DD or --MM-DD, got {value!r}") from None


def check_zone(value: Any) -> str:
    name = str(value).strip()
    if name not in _ZONES:
        try:
            ZoneInfo(name)
            _ZONES[name] = True
        except (ZoneInfoNotFoundError, ValueError):
            _ZONES[name] = False
    if not _ZONES[name]:
        raise ValueError(f"timezone: unknown IANA time zone {value!r}")
    return name


_NUMERIC_START = frozenset("-0123456789")


def typed(value: Any) -> Any:
    """Give CSV text its natural type (42 → int, 9.5 → float) so rules compare numbers as numbers."""
    if not isinstance(value, str) or not value or value[0] not in _NUMERIC_START:
        return value
    if _INT.match(value) and len(value) < 18:
        return int(value)
    if _FLOAT.match(value):
        return float(value)
    return value


def _text(value: Any, name: str, limit: int = 255) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError(f"{name}: expected text, got {type(value).__name__}")
    text = str(value).strip()
    if len(text) > limit:
        raise ValueError(f"{name}: longer than {limit} characters")
    return text


def _nul_free(value: Any, name: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{name}: contains a NUL character (\\0), which the store cannot keep")
    elif isinstance(value, dict):
        for key, item in value.items():
            _nul_free(key, name)
            _nul_free(item, f"{name}.{key}")
    elif isinstance(value, list):
        for item in value:
            _nul_free(item, name)


def reject_nul(raw: dict[str, Any]) -> None:
    """PostgreSQL refuses NUL in text and JSON; SQLite would keep it and break later readers."""
    try:  # a flat row of text (every CSV row): one scan in C; anything else is walked below
        if "\x00" not in "".join(raw) and "\x00" not in "".join(v for v in raw.values() if v is not None):
            return
    except TypeError:
        pass
    try:
        for key, value in raw.items():
            _nul_free(key, "column name")
            _nul_free(value, str(key))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def customer_row(raw: dict[str, Any], untyped: bool) -> dict[str, Any]:
    """Columns to upsert for one customer; only the fields the row names are set."""
    reject_nul(raw)
    if raw.get("id") in (None, ""):
        raise ValueError("id: required")
    row: dict[str, Any] = {"id": _text(raw["id"], "id")}
    attributes: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "id":
            continue
        if key == "attributes" and not untyped:
            if not isinstance(value, dict):
                raise ValueError("attributes: expected an object")
            attributes.update(value)
        elif key in CUSTOMER_FIELDS:
            row.update(_customer_field(key, value))
        elif key in ("birth_month", "birth_day", "updated_at"):
            raise ValueError(f"{key}: reserved column name")
        elif value is not None:
            attributes[key] = typed(value) if untyped else value
    row["attributes"] = attributes
    return row


def _customer_field(key: str, value: Any) -> dict[str, Any]:
    if value is None:
        if key == "email_opt_in":
            return {key: False}
        if key == "birthday":
            return {"birthday": None, "birth_month": None, "birth_day": None}
        return {key: None}
    if key == "email_opt_in":
        return {key: parse_bool(value, key)}
    if key in ("signed_up_at", "unsubscribed_at"):
        return {key: parse_instant(value, key)}
    if key == "birthday":
        text, month, day = parse_birthday(value)
        return {"birthday": text, "birth_month": month, "birth_day": day}
    if key == "country":
        if not _COUNTRY.match(str(value).strip()):
            raise ValueError(f"country: expected an ISO 3166-1 alpha-2 code like US, got {value!r}")
        return {key: str(value).strip().upper()}
    if key == "timezone":
        return {key: check_zone(value)}
    if key == "email":
        text = _text(value, key, 320).lower()
        if not _EMAIL.match(text):
            raise ValueError(f"email: not an email address: {value!r}")
        return {key: text}
    return {key: _text(value, key)}


_EVENT_FIELDS = frozenset(("id", "customer_id", "type", "occurred_at"))


def event_row(raw: dict[str, Any], untyped: bool) -> dict[str, Any]:
    """Columns for one event, with the key that makes re-imports no-ops."""
    reject_nul(raw)
    customer_id, kind, when = raw.get("customer_id"), raw.get("type"), raw.get("occurred_at")
    if customer_id in (None, "") or kind in (None, "") or when in (None, ""):
        missing = [
            k for k, v in (("customer_id", customer_id), ("type", kind), ("occurred_at", when)) if v in (None, "")
        ]
        raise ValueError(f"{', '.join(missing)}: required")
    customer_id = customer_id.strip() if isinstance(customer_id, str) else _text(customer_id, "customer_id")
    kind = kind.strip() if isinstance(kind, str) else _text(kind, "type", 64)
    if len(customer_id) > 255:
        raise ValueError("customer_id: longer than 255 characters")
    if not _EVENT_TYPE.match(kind):
        raise ValueError(f"type: use letters, digits, _ . : - (got {kind!r})")
    occurred_at = parse_instant(when, "occurred_at")
    properties: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or key in _EVENT_FIELDS:
            continue
        if key == "properties" and not untyped:
            if not isinstance(value, dict):
                raise ValueError("properties: expected an object")
            properties.update(value)
        else:
            properties[key] = typed(value) if untyped else value
    source_id = raw.get("id")
    if source_id not in (None, ""):
        key = "id:" + (
            source_id if isinstance(source_id, str) and len(source_id) <= 290 else _text(source_id, "id", 290)
        )
    else:
        canonical = json.dumps(
            [customer_id, kind, occurred_at.isoformat(), properties], sort_keys=True, separators=(",", ":"), default=str
        )
        key = "h:" + hashlib.sha256(canonical.encode()).hexdigest()
    return {
        "event_key": key,
        "customer_id": customer_id,
        "type": kind,
        "occurred_at": occurred_at,
        "properties": properties,
    }
