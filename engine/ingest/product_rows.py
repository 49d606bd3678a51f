"""One imported product row → `products` columns, or a ValueError saying what is wrong with it."""

from __future__ import annotations

import math
import re
from typing import Any

from engine.core.values import MAX_NUMBER, parse_bool
from engine.ingest.rows import check_values, typed

_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
# Links go into emails as they are: a relative or scripted one would be a dead or hostile link.
_LINK = re.compile(r"^https?://[^\s<>\"']+$", re.IGNORECASE)
LINK_MAX = 2000  # characters: what mail clients and browsers keep
NAME_MAX = 1000
# The columns `products` has; `updated_at` is the store's own.
COLUMNS = ("id", "name", "category", "price", "currency", "url", "image_url", "in_stock")
RESERVED = frozenset({"updated_at"})


def _text(value: Any, name: str, limit: int = 255) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list, bool)):
        raise ValueError(f"{name}: expected text, got {type(value).__name__}")
    text = str(value).strip()
    if len(text) > limit:
        raise ValueError(f"{name}: longer than {limit} characters")
    return text or None


def _price(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"price: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"price: expected a number like 59.90, got {value!r}") from None
    if not math.isfinite(number) or not 0 <= number <= MAX_NUMBER:
        raise ValueError(f"price: {value!r} is not a price (a number from 0 to 1e15)")
    return number


def _currency(value: Any) -> str | None:
    text = _text(value, "currency")
    if text is not None and not _CURRENCY.match(text):
        raise ValueError(f"currency: expected an ISO 4217 code like CNY or USD, got {value!r}")
    return text.upper() if text else None


def _link(value: Any, name: str) -> str | None:
    text = _text(value, name, LINK_MAX)
    if text is not None and not _LINK.match(text):
        raise ValueError(f"{name}: expected an http:// or https:// address, got {value!r}")
    return text


def _column(key: str, value: Any) -> Any:
    if key == "price":
        return _price(value)
    if key == "currency":
        return _currency(value)
    if key in ("url", "image_url"):
        return _link(value, key)
    if key == "in_stock":  # empty: the default, in stock
        return True if value is None or value == "" else parse_bool(value, key)
    return _text(value, key, NAME_MAX if key == "name" else 255)


def product_row(raw: dict[str, Any], untyped: bool) -> dict[str, Any]:
    """Columns to upsert for one product; only the columns the row names are set (a new product
    not naming `in_stock` is in stock). Other columns, and a JSON row's `attributes` object, are
    attributes."""
    check_values(raw)
    key_text = _text(raw.get("id"), "id")
    if key_text is None:
        raise ValueError("id: required")
    row: dict[str, Any] = {"id": key_text}
    attributes: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "id":
            continue
        if key == "attributes" and not untyped:
            if not isinstance(value, dict):
                raise ValueError("attributes: expected an object")
            attributes.update(value)
        elif key in COLUMNS:
            row[key] = _column(key, value)
        elif key in RESERVED:
            raise ValueError(f"{key}: reserved column name")
        elif value is not None and value != "":
            attributes[key] = typed(value) if untyped else value
    row["attributes"] = attributes
    return row
