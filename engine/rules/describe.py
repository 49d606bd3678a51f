"""Short human labels for conditions, as a marketer would read them back."""

from __future__ import annotations

from typing import Any

from engine.rules.conditions import (AllOf, AnyOf, AttributeCondition, BirthdayCondition, EventCondition, MetricCondition, Not,
                         Ops, SegmentRef)
from engine.core.durations import format_duration


def _value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if hasattr(value, "total_seconds"):
        return format_duration(value)
    return str(value)


def describe_ops(ops: Ops) -> str:
    name, value = ops.operator
    return f"{name} {_value(value)}"


def describe(cond: Any) -> str:
    """One line for one node (children are described separately)."""
    if isinstance(cond, AllOf):
        return "all of"
    if isinstance(cond, AnyOf):
        return "any of"
    if isinstance(cond, Not):
        return "not"
    if isinstance(cond, AttributeCondition):
        return f"attribute {cond.attribute} {describe_ops(cond)}"
    if isinstance(cond, SegmentRef):
        return f"segment {cond.segment}"
    if isinstance(cond, MetricCondition):
        return f"metric {cond.metric} {describe_ops(cond)}"
    if isinstance(cond, BirthdayCondition):
        return f"birthday in {format_duration(cond.birthday.in_)}"
    if isinstance(cond, EventCondition):
        parts = [f"event {cond.event}"]
        if cond.within is not None:
            parts.append(f"within {format_duration(cond.within)}")
        if cond.before is not None:
            parts.append(f"before {format_duration(cond.before)}")
        if cond.between is not None:
            parts.append(f"between {_value(list(cond.between))}")
        for key, test in (cond.where or {}).items():
            parts.append(f"where {key} {describe_ops(test) if isinstance(test, Ops) else 'eq ' + _value(test)}")
        name, ops = cond.aggregate
        of = f" of {ops.of}" if hasattr(ops, "of") else ""
        parts.append(f"{name}{of} {describe_ops(ops)}")
        if cond.not_followed_by:
            parts.append(f"not followed by {cond.not_followed_by}")
        return " ".join(parts)
    return type(cond).__name__
