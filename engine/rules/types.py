"""Small annotated types shared by the rule and config models."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, StrictBool, WithJsonSchema

from engine.core.durations import DURATION_PATTERN, format_duration, parse_duration
from engine.core.fields import check_key_name
from engine.core.values import number_problem, shown_number

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["15m", "24h", "90d", "2w"]}),
]


def _comparable(value: Any) -> Any:
    """A number the stores can compare against: finite, within ±1e15 (as stored data is)."""
    reason = number_problem(value)
    if reason is not None:
        raise ValueError(f"{reason}: numbers in rules are finite and within ±1e15, as stored data is")
    return value


# A value a marketer compares against: YAML gives us bools, numbers, strings and dates.
Scalar = Annotated[StrictBool | int | float | datetime | date | str, BeforeValidator(_comparable)]


def _property_name(name: str) -> str:
    reason = check_key_name(name, "property")
    if reason:
        raise ValueError(reason)
    return name


# An event property a rule reads: the same characters as a custom attribute's name.
PropertyName = Annotated[str, AfterValidator(_property_name)]

SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"


def _example(value: float) -> str:
    return f"{value * 100:g}%" if 0 < value < 1 else f"{value:g}%"


def parse_percent(value: Any) -> float:
    """``"10%"`` → 10.0, within 0..100; a bare number is refused as ambiguous."""
    if isinstance(value, str):
        text = value.strip()
        if not text.endswith("%"):
            raise ValueError(f"expected a percentage like 10%, got {value!r}")
        try:
            number = float(text[:-1])
        except ValueError:
            raise ValueError(f"expected a percentage like 10%, got {value!r}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if number_problem(value) is not None:  # no example to give: 10**400 * 100 is no float
            raise ValueError(f"expected a percentage like 10%, got {shown_number(value)}")
        # A bare 0.1 could mean 10% or 0.1%: the marketer must say which.
        raise ValueError(f"write the percentage with %, e.g. {_example(value)}: a bare {value!r} is ambiguous")
    else:
        raise ValueError(f"expected a percentage like 10%, got {value!r}")
    if not 0 <= number <= 100:
        raise ValueError(f"a percentage must be between 0% and 100%, got {value!r}")
    return number


Percent = Annotated[
    float,
    BeforeValidator(parse_percent),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?%$", "examples": ["10%"]}),
]
