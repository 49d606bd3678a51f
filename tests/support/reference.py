"""A deliberately naive Python evaluator of the condition language, and of who may be reached on
which channel: the oracle for differential tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from engine.rules.conditions import (
    AllOf,
    AnyOf,
    AttributeCondition,
    BirthdayCondition,
    EventCondition,
    Not,
    Ops,
    ReceivedCondition,
    SegmentRef,
)


def _test(value: Any, ops: Ops, at: datetime) -> bool:
    name, operand = ops.operator
    if name == "exists":
        return (value is not None) == operand
    if value is None:
        return name in ("ne", "not_in")
    if name == "older_than":
        return value <= at - operand
    if name == "newer_than":
        return value > at - operand
    if name == "contains":
        return str(operand).lower() in value.lower()
    if name == "starts_with":
        return value.lower().startswith(str(operand).lower())
    if name == "between":
        return operand[0] <= value <= operand[1]
    if name == "in":
        return value in operand
    if name == "not_in":
        return value not in operand
    return {
        "eq": value == operand,
        "ne": value != operand,
        "gt": value > operand,
        "gte": value >= operand,
        "lt": value < operand,
        "lte": value <= operand,
    }[name]


def _typed(value: Any, ops: Ops) -> Any:
    """A JSON value as the comparison sees it: the operand's type, or missing."""
    name, operand = ops.operator
    if name == "exists":
        return value
    sample = operand[0] if isinstance(operand, (list, tuple)) and operand else operand
    if name in ("contains", "starts_with") or isinstance(sample, str):
        return value if isinstance(value, str) else None
    if isinstance(sample, bool):
        return value if isinstance(value, bool) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _event(cond: EventCondition, history: list[dict], at: datetime) -> bool:
    def keep(e: dict) -> bool:
        t = e["occurred_at"]
        if e["type"] != cond.event or t > at:
            return False
        if cond.within is not None and not t > at - cond.within:
            return False
        if cond.before is not None and not t <= at - cond.before:
            return False
        if cond.between is not None and not (at - cond.between[0] < t <= at - cond.between[1]):
            return False
        for key, test in (cond.where or {}).items():
            ops = test if isinstance(test, Ops) else Ops(eq=test)
            if not _test(_typed(e["properties"].get(key), ops), ops, at):
                return False
        return cond.without is None or not any(_forbids(cond.without, e, other, at) for other in history)

    matching = sorted((e for e in history if keep(e)), key=lambda e: (e["occurred_at"], e["seq"]))
    name, ops = cond.aggregate
    follow = cond.follow
    if follow is not None:
        if not matching:
            return False
        newest = matching[-1]
        last = newest["occurred_at"]

        def same(e: dict) -> bool:
            mine, theirs = newest["properties"], e["properties"]
            return all(_same_json(mine.get(k), theirs.get(k)) for k in follow.same)

        if any(e["type"] == follow.type and last < e["occurred_at"] <= at and same(e) for e in history):
            return False
    if name == "count":
        return _test(len(matching), ops, at)
    if name == "latest":
        return _test(_typed(matching[-1]["properties"].get(ops.of) if matching else None, ops), ops, at)
    numbers = [
        v for e in matching if isinstance(v := e["properties"].get(ops.of), (int, float)) and not isinstance(v, bool)
    ]
    if name == "sum":
        return _test(sum(numbers), ops, at)
    if not numbers:
        return _test(None, ops, at)
    value = {"avg": sum(numbers) / len(numbers), "min": min(numbers), "max": max(numbers)}[name]
    return _test(value, ops, at)


def _forbids(spec: Any, event: dict, other: dict, at: datetime) -> bool:
    """Is `other` an event that `without: spec` forbids for the matched `event`?"""
    t = other["occurred_at"]
    return (
        other is not event
        and other["type"] == spec.type
        and t <= at
        and (spec.within is None or t > at - spec.within)
        and all(_same_json(event["properties"].get(k), other["properties"].get(k)) for k in spec.same)
    )


def _birthday(cond: BirthdayCondition, customer: dict, at: datetime, default_zone: str) -> bool:
    if not customer.get("birthday"):
        return False
    month, day = int(customer["birthday"][-5:-3]), int(customer["birthday"][-2:])
    local = at.astimezone(ZoneInfo(customer.get("timezone") or default_zone)).date()
    target = local + timedelta(days=cond.birthday.in_.days)
    if (month, day) == (target.month, target.day):
        return True
    leap = target.year % 4 == 0 and (target.year % 100 != 0 or target.year % 400 == 0)
    return (month, day) == (2, 29) and (target.month, target.day) == (2, 28) and not leap


def _in_window(moment: datetime, spec: Any, at: datetime) -> bool:
    if moment > at:
        return False
    if spec.within is not None and not moment > at - spec.within:
        return False
    if spec.before is not None and not moment <= at - spec.before:
        return False
    if spec.between is not None:
        older, newer = spec.between
        return at - older < moment <= at - newer
    return True


def _received(cond: Any, ledger: list[dict], history: list[dict], at: datetime) -> bool:
    spec = cond.received
    statuses = {str(s) for s in spec.status}
    mine = [
        d["occurrence"]
        for d in ledger
        if d["campaign"] == spec.campaign and d["status"] in statuses and _in_window(as_utc(d["occurrence"]), spec, at)
    ]
    if not _test(len(mine), spec.count or Ops(gte=1), at):
        return False
    if spec.not_followed_by:
        if not mine:
            return False
        last = max(as_utc(m) for m in mine)
        return not any(e["type"] == spec.not_followed_by and last < as_utc(e["occurred_at"]) <= at for e in history)
    return True


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality: same type (true is not 1; 7 and 7.0 are one number) and value; null is nothing."""
    if a is None or b is None:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    numbers = isinstance(a, (int, float)) and isinstance(b, (int, float))
    return (type(a) is type(b) or numbers) and a == b


def matches(
    cond: Any,
    customer: dict,
    history: list[dict],
    at: datetime,
    default_zone: str = "UTC",
    segments: dict | None = None,
    ledger: list[dict] | None = None,
) -> bool:
    if isinstance(cond, AllOf):
        return all(matches(c, customer, history, at, default_zone, segments, ledger) for c in cond.all_)
    if isinstance(cond, AnyOf):
        return any(matches(c, customer, history, at, default_zone, segments, ledger) for c in cond.any_)
    if isinstance(cond, Not):
        return not matches(cond.not_, customer, history, at, default_zone, segments, ledger)
    if isinstance(cond, SegmentRef):
        return matches(segments[cond.segment], customer, history, at, default_zone, segments, ledger)
    if isinstance(cond, AttributeCondition):
        if cond.attribute.startswith("attributes."):
            value = _typed(customer.get("attributes", {}).get(cond.attribute[11:]), cond)
        else:
            value = customer.get(cond.attribute)
        return _test(value, cond, at)
    if isinstance(cond, EventCondition):
        return _event(cond, history, at)
    if isinstance(cond, BirthdayCondition):
        return _birthday(cond, customer, at, default_zone)
    if isinstance(cond, ReceivedCondition):
        return _received(cond, ledger or [], history, at)
    raise TypeError(cond)


def as_utc(value: datetime | date) -> datetime:
    return value if isinstance(value, datetime) else datetime(value.year, value.month, value.day, tzinfo=timezone.utc)


# --- consent per channel and topic (SPEC "Consent, topics and the preference centre") ------------


def _hashed(address: str) -> str:
    """How `nudge forget` keeps a suppressed address: written out here, not imported from the engine."""
    return "sha256:" + hashlib.sha256(address.strip().lower().encode()).hexdigest()


def _suppressed(address: str, suppressed: set[str]) -> bool:
    return address in suppressed or _hashed(address) in suppressed


def _channel_allows(channel: str, customer: dict, suppressed: set[str], double_opt_in: bool) -> bool:
    if channel == "email":
        email = customer.get("email")
        if not email or not customer.get("email_opt_in") or customer.get("unsubscribed_at"):
            return False
        if double_opt_in and not customer.get("email_confirmed_at"):
            return False
        return not _suppressed(email.lower(), suppressed)
    if channel == "sms":
        phone = customer.get("phone")
        if not phone or not customer.get("sms_opt_in") or customer.get("sms_unsubscribed_at"):
            return False
        return not _suppressed(phone, suppressed)
    if channel == "webhook":  # the shop's own systems: no address of the customer's to consent
        return True
    raise ValueError(channel)


def reachable(
    customer: dict,
    channels: Sequence[str],
    topic: str | None,
    *,
    suppressed: set[str],
    left: set[str],
    double_opt_in: bool = False,
) -> tuple[str, ...]:
    """The campaign's channels this customer may get its message on, in the campaign's order.

    `topic` None: a required topic, which nobody can leave; `left`: the topics the customer left
    (a subscriptions row with subscribed false); `suppressed`: suppression entries, plain or hashed.
    An anonymous profile (`anon:…`) is nobody to reach."""
    if customer["id"].startswith("anon:") or (topic is not None and topic in left):
        return ()
    return tuple(c for c in channels if _channel_allows(c, customer, suppressed, double_opt_in))
