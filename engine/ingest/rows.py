"""One imported row → store columns, or a ValueError saying what is wrong with it."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.core.fields import BOOL, CUSTOMER_FIELDS, DATETIME
from engine.core.values import (
    EARLIEST,
    LATEST,
    MAX_NUMBER,
    instant_problem,
    number_problem,
    parse_bool,
    parse_instant,
)
from engine.ingest.contact import TOPIC_COLUMN, KnownTopics, locale_tag, phone_e164, topic_choice

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
    except ValueError:
        raise ValueError(f"birthday: expected YYYY-MM-DD or --MM-DD, got {value!r}") from None
    if not EARLIEST.year <= parsed.year <= LATEST.year:
        raise ValueError(f"birthday: {text} is outside the years {EARLIEST.year}-{LATEST.year}")
    return parsed.isoformat(), parsed.month, parsed.day


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
    """Give CSV text its natural type (42 → int, 9.5 → float) so rules compare numbers as numbers.
    A number beyond what both stores keep (±1e15, finite) stays text, like a long order number."""
    if not isinstance(value, str) or not value or value[0] not in _NUMERIC_START:
        return value
    number: int | float
    if _INT.match(value) and len(value) < 18:
        number = int(value)
    elif _FLOAT.match(value):
        number = float(value)
    else:
        return value
    return number if number_problem(number) is None else value


def _text(value: Any, name: str, limit: int = 255) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError(f"{name}: expected text, got {type(value).__name__}")
    text = str(value).strip()
    if len(text) > limit:
        raise ValueError(f"{name}: longer than {limit} characters")
    return text


MAX_NESTING = 32  # levels of objects and arrays in one property or attribute


def _text_problem(text: str, where: str) -> str | None:
    if "\x00" in text:
        return f"{where}: contains a NUL character (\\0), which the store cannot keep"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return f"{where}: contains a lone surrogate (\\ud800-\\udfff), which is not text"
    return None


def _name(key: Any) -> str:
    """A key as a message names it: as written, unless it holds a line break or another control."""
    text = str(key)
    return text if text.isprintable() and len(text) <= 40 else _shown(key)


def _shown(text: Any) -> str:
    shown = repr(text)
    return shown if len(shown) <= 42 else shown[:39] + "..."


def _values_problem(row: dict[str, Any]) -> str | None:
    """What the store cannot keep in a row, walked without recursion: NUL or a lone surrogate in
    any text (a column or property name too), a number that is not finite or beyond ±1e15,
    nesting deeper than MAX_NESTING. Leaves are checked in place and names built only for a
    message: this runs for every row of an import."""
    stack: list[tuple[Any, str, int]] = [(row, "", 0)]
    while stack:
        item, name, depth = stack.pop()
        if depth > MAX_NESTING:
            return f"{name}: nested more than {MAX_NESTING} levels deep"
        pairs = item.items() if isinstance(item, dict) else ((None, sub) for sub in item)
        for key, sub in pairs:
            if (
                key is not None
                and (type(key) is not str or "\x00" in key or not key.isascii())
                and (reason := _leaf_problem(key, f"{name}: key {_shown(key)}" if name else "column name"))
            ):
                return reason
            kind = type(sub)
            if kind is dict or kind is list:
                stack.append((sub, _child(name, key), depth + 1))
            elif (
                (kind is str and ("\x00" in sub or not sub.isascii()))
                or ((kind is int or kind is float) and not -MAX_NUMBER <= sub <= MAX_NUMBER)  # NaN fails it too
            ) and (reason := _leaf_problem(sub, _child(name, key))):
                return reason
    return None


def _child(name: str, key: Any) -> str:
    if key is None:
        return name
    return f"{name}.{_name(key)}" if name else _name(key)


def _leaf_problem(value: Any, name: str) -> str | None:
    if isinstance(value, str):
        return _text_problem(value, name)
    reason = number_problem(value)
    if reason is None:
        return None
    return f"{name}: {reason}" + (" (send a larger integer as a string)" if isinstance(value, int) else "")


def check_values(raw: dict[str, Any]) -> None:
    """Every value of a row as both stores keep it (see _values_problem), or a ValueError.
    PostgreSQL refuses NUL in text and JSON and reads JSON numbers as double precision; SQLite
    would keep NUL and Infinity and break every later reader."""
    try:  # a flat row of text (every CSV row): a scan in C; anything else is walked below
        # filter(None): None, "" and 0 are fine values and drop out; anything else not text fails the join
        joined = "".join(raw) + "".join(filter(None, raw.values()))
    except TypeError:
        pass
    else:
        if "\x00" not in joined and (joined.isascii() or _text_problem(joined, "") is None):
            return
    reason = _values_problem(raw)
    if reason is not None:
        raise ValueError(reason)


# What an import may set: the fields rules read, and SMS consent (set here, read by the channels).
IMPORTED_FIELDS = {**CUSTOMER_FIELDS, "sms_opt_in": BOOL, "sms_unsubscribed_at": DATETIME}
# Columns the store fills itself; email_confirmed_at only a confirmation link sets (double opt-in).
RESERVED = frozenset(("birth_month", "birth_day", "updated_at", "email_confirmed_at"))
# A parsed customer row's topic choices, {topic: subscribed}: not a column (the writer takes it out).
TOPICS = "topics"
NO_TOPICS = KnownTopics()


def customer_row(raw: dict[str, Any], untyped: bool, topics: KnownTopics = NO_TOPICS) -> dict[str, Any]:
    """Columns to upsert for one customer; only the fields the row names are set. `topics`: the
    topics a `topics.NAME` column may name."""
    check_values(raw)
    if raw.get("id") in (None, ""):
        raise ValueError("id: required")
    row: dict[str, Any] = {"id": _text(raw["id"], "id")}
    attributes: dict[str, Any] = {}
    choices: dict[str, bool] = {}
    for key, value in raw.items():
        field = _FIELDS.get(key)
        if field is not None:
            field(row, value)
        elif key == "id" or key == "phone":
            continue
        elif key == "attributes" and not untyped:
            if not isinstance(value, dict):
                raise ValueError("attributes: expected an object")
            attributes.update(value)
        elif key.startswith(TOPIC_COLUMN):
            if (choice := topic_choice(key, value, topics)) is not None:
                choices[choice[0]] = choice[1]
        elif key in RESERVED:
            raise ValueError(f"{key}: reserved column name")
        elif value is not None:
            attributes[key] = typed(value) if untyped else value
    if "phone" in raw:  # after the loop: the row's country is the region of a number without +CC
        phone = raw["phone"]
        row["phone"] = None if phone is None or phone == "" else phone_e164(phone, row.get("country"))
    row["attributes"] = attributes
    if choices:
        row[TOPICS] = choices
    return row


# One setter per imported field, looked up by column name (a dict lookup per cell instead of a
# ladder of comparisons): it writes the field's column(s) into the row, or raises a ValueError.
# An empty cell clears a field; the opt-ins are NOT NULL, so empty means not agreed.
Setter = Callable[[dict[str, Any], Any], None]


def _setter(key: str, convert: Callable[[Any], Any], empty: Any = None) -> Setter:
    def set_field(row: dict[str, Any], value: Any) -> None:
        row[key] = empty if value is None else convert(value)

    return set_field


def _set_birthday(row: dict[str, Any], value: Any) -> None:
    if value is None:
        row["birthday"] = row["birth_month"] = row["birth_day"] = None
    else:
        row["birthday"], row["birth_month"], row["birth_day"] = parse_birthday(value)


def _country(value: Any) -> str:
    if not _COUNTRY.match(str(value).strip()):
        raise ValueError(f"country: expected an ISO 3166-1 alpha-2 code like US, got {value!r}")
    return str(value).strip().upper()


def _email(value: Any) -> str:
    text = _text(value, "email", 320).lower()
    if not _EMAIL.match(text):
        raise ValueError(f"email: not an email address: {value!r}")
    return text


def _converter(key: str) -> Callable[[Any], Any]:
    if key in ("email_opt_in", "sms_opt_in"):
        return lambda value: parse_bool(value, key)
    if IMPORTED_FIELDS[key] == DATETIME:
        return lambda value: instant(value, key)
    special: dict[str, Callable[[Any], Any]] = {
        "country": _country,
        "timezone": check_zone,
        "locale": locale_tag,
        "email": _email,
    }
    return special.get(key) or (lambda value: _text(value, key))


# id: required, checked first; phone: read after the loop, with the row's country
_FIELDS: dict[str, Setter] = {
    key: _set_birthday if key == "birthday" else _setter(key, _converter(key), False if kind == BOOL else None)
    for key, kind in IMPORTED_FIELDS.items()
    if key not in ("id", "phone")
}


_EVENT_FIELDS = frozenset(("id", "customer_id", "type", "occurred_at"))


def instant(value: Any, name: str, latest: datetime = LATEST) -> datetime:
    """An ISO 8601 instant as the store keeps it, within EARLIEST and `latest`."""
    moment = parse_instant(value, name)
    reason = instant_problem(moment, name, latest)
    if reason is not None:
        raise ValueError(reason)
    return moment


def event_row(raw: dict[str, Any], untyped: bool, latest: datetime) -> dict[str, Any]:
    """Columns for one event, with the key that makes re-imports no-ops. `latest`: the first
    instant too far in the future for an event (now + 24 h)."""
    check_values(raw)
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
    occurred_at = instant(when, "occurred_at", latest)
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
