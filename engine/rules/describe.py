"""Short human labels for conditions, as a marketer would read them back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.core.durations import format_duration
from engine.rules.conditions import Aggregate, ConditionKind, EventCondition, Ops, Without


def _value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if hasattr(value, "total_seconds"):
        return format_duration(value)
    return str(value)


def describe_ops(ops: Ops) -> str:
    name, value = ops.operator
    return f"{name} {_value(value)}"


def _event(cond: EventCondition) -> str:
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
    of = f" of {ops.of}" if isinstance(ops, Aggregate) else ""
    parts.append(f"{name}{of} {describe_ops(ops)}")
    follow = cond.follow
    if follow is not None:
        same = f" with the same {', '.join(follow.same)}" if follow.same else ""
        parts.append(f"not followed by {follow.type}{same}")
    if cond.without is not None:
        parts.append(describe_without(cond.without))
    return " ".join(parts)


def describe_without(spec: Without) -> str:
    """`without: {type: purchase, same: [category]}` → "without purchase of the same category"."""
    same = f" of the same {', '.join(spec.same)}" if spec.same else ""
    within = f" within {format_duration(spec.within)}" if spec.within is not None else ""
    return f"without {spec.type}{same}{within}"


def _received(cond: Any) -> str:
    spec = cond.received
    parts = [f"received {spec.campaign}"]
    for key in ("within", "before"):
        if getattr(spec, key) is not None:
            parts.append(f"{key} {format_duration(getattr(spec, key))}")
    if spec.between is not None:
        parts.append(f"between {_value(list(spec.between))}")
    parts.append(f"status {', '.join(str(s) for s in spec.status)}")
    parts.append(f"count {describe_ops(spec.count) if spec.count else 'gte 1'}")
    if spec.not_followed_by:
        parts.append(f"not followed by {spec.not_followed_by}")
    return " ".join(parts)


def _journey(cond: Any) -> str:
    if cond.test == "in_journey":
        return f"in journey {cond.journey} (entered, not finished, not exited)"
    wait = f", {format_duration(cond.wait)} after {cond.steps[cond.index - 1]}" if cond.wait else ""
    exit_on = f", no {cond.exit_on} since entering" if cond.exit_on else ""
    return f"due for {cond.steps[cond.index]}{wait}{exit_on}"


LABELS: dict[ConditionKind, Callable[[Any], str]] = {
    ConditionKind.ALL: lambda cond: "all of",
    ConditionKind.ANY: lambda cond: "any of",
    ConditionKind.NOT: lambda cond: "not",
    ConditionKind.ATTRIBUTE: lambda cond: f"attribute {cond.attribute} {describe_ops(cond)}",
    ConditionKind.SEGMENT: lambda cond: f"segment {cond.segment}",
    ConditionKind.METRIC: lambda cond: f"metric {cond.metric} {describe_ops(cond)}",
    ConditionKind.BIRTHDAY: lambda cond: f"birthday in {format_duration(cond.birthday.in_)}",
    ConditionKind.EVENT: _event,
    ConditionKind.RECEIVED: _received,
    ConditionKind.JOURNEY: _journey,
}


def describe(cond: Any) -> str:
    """One line for one node (children are described separately)."""
    return LABELS[cond.kind](cond)
