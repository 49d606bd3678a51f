"""Comparison operators (`eq`, `in`, `between`, `older_than`, …) as SQL, with operands typed and
checked against the column's kind, and the same meaning on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.audience.context import EvalContext
from engine.core.errors import ConditionError
from engine.core.fields import BOOL, DATETIME, STRING
from engine.core.values import parse_bool, parse_instant
from engine.rules.conditions import Ops, Without
from engine.store.sqljson import BOOLEAN, NUMBER, TEXT, json_present, json_same, json_value
from engine.store.tables import events

NUMERIC = "numeric"


def _operand(value: Any, kind: str, loc: tuple) -> Any:
    try:
        if isinstance(value, list):
            return [_operand(v, kind, loc) for v in value]
        if kind == DATETIME:
            if isinstance(value, date) and not isinstance(value, datetime):
                value = datetime(value.year, value.month, value.day)
            return parse_instant(value, "value")
        if kind == BOOL:
            return parse_bool(value, "value")
        if kind == NUMERIC:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"expected a number, got {value!r}")
            return value
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    except ValueError as exc:
        raise ConditionError(str(exc), loc) from None


def compare(expr: ColumnElement, ops: Ops, kind: str, ctx: EvalContext, loc: tuple = ()) -> ColumnElement:
    """``expr OPERATOR operand``. ``ne`` and ``not_in`` also match missing values."""
    name, raw = ops.operator
    where = loc + (name,)
    if name == "exists":
        return expr.is_not(None) if raw else expr.is_(None)
    if name in ("older_than", "newer_than"):
        edge = ctx.at_utc - raw
        return expr <= edge if name == "older_than" else expr > edge
    if name in ("contains", "starts_with"):
        text = str(raw).lower()
        lowered = sa.func.lower(expr)
        return (
            lowered.contains(text, autoescape=True) if name == "contains" else lowered.startswith(text, autoescape=True)
        )
    value = _operand(list(raw) if name == "between" else raw, kind, where)
    if kind == STRING and ctx.dialect == "postgresql" and name in ("gt", "gte", "lt", "lte", "between"):
        # Order text by code point, as SQLite does, whatever the database's locale.
        expr = expr.collate("C")
    if name == "between":
        return expr.between(value[0], value[1])
    if name == "in":
        return expr.in_(value) if value else sa.false()
    if name == "not_in":
        return sa.or_(expr.is_(None), expr.not_in(value)) if value else sa.true()
    if name == "ne":
        return sa.or_(expr.is_(None), expr != value)
    return {"eq": expr.__eq__, "gt": expr.__gt__, "gte": expr.__ge__, "lt": expr.__lt__, "lte": expr.__le__}[name](
        value
    )


def holds_for_nothing(ops: Ops, empty_value: Any) -> bool:
    """Does the test hold for a customer with no matching events (count 0, sum 0, else missing)?"""
    name, raw = ops.operator
    value = empty_value
    if name == "exists":
        return (value is not None) == raw
    if value is None:
        return name in ("ne", "not_in")
    if name in ("older_than", "newer_than", "contains", "starts_with"):
        return False
    if name == "between":
        return raw[0] <= value <= raw[1]
    if name == "in":
        return value in raw
    if name == "not_in":
        return value not in raw
    return {
        "eq": value == raw,
        "ne": value != raw,
        "gt": value > raw,
        "gte": value >= raw,
        "lt": value < raw,
        "lte": value <= raw,
    }[name]


def json_kind(ops: Ops) -> str:
    """Which JSON type a comparison reads, judged by its operand."""
    name, raw = ops.operator
    sample = raw[0] if isinstance(raw, (list, tuple)) and raw else raw
    if name in ("contains", "starts_with"):
        return TEXT
    if isinstance(sample, bool):
        return BOOLEAN
    if isinstance(sample, (int, float)):
        return NUMBER
    return TEXT


def json_compare(column: ColumnElement, key: str, ops: Ops, ctx: EvalContext, loc: tuple) -> ColumnElement:
    name, _ = ops.operator
    if name == "exists":
        present = json_present(column, key, ctx.dialect)
        return present if ops.exists else sa.not_(present)
    kind = json_kind(ops)
    value = json_value(column, key, kind, ctx.dialect)
    operand_kind = {NUMBER: NUMERIC, BOOLEAN: BOOL, TEXT: STRING}[kind]
    return compare(value, ops, operand_kind, ctx, loc)


# --- leaves -------------------------------------------------------------------------------


def window_clauses(column: Any, spec: Any, at: datetime) -> list[ColumnElement]:
    """A condition's `within` / `before` / `between` on a timestamp column, relative to `at`
    (never after it): the same windows for events and for ledger rows."""
    clauses: list[ColumnElement] = [column <= at]
    if spec.within is not None:
        clauses.append(column > at - spec.within)
    if spec.before is not None:
        clauses.append(column <= at - spec.before)
    if spec.between is not None:
        older, newer = spec.between
        clauses += [column > at - older, column <= at - newer]
    return clauses


def not_followed_by(
    event_type: str,
    ctx: EvalContext,
    customer_col: Any,
    after_col: Any,
    same: Sequence[str] = (),
    properties_col: Any = None,
) -> ColumnElement:
    """No event of `event_type` for this customer after `after_col`, up to `at`; with `same`, only
    a later event whose properties equal those of `properties_col` (the matched event) counts."""
    # A missing or null key on the matched event matches nothing.
    keyed = [json_same(events.c.properties, properties_col, key, ctx.dialect) for key in same]
    later = sa.select(sa.literal(1)).where(
        events.c.customer_id == customer_col,
        events.c.type == event_type,
        events.c.occurred_at > after_col,
        events.c.occurred_at <= ctx.at_utc,
        *keyed,
    )
    return ~sa.exists(later)


def other_events(spec: Without, ctx: EvalContext) -> tuple[Any, list[ColumnElement]]:
    """An alias of `events` and the clauses that make its rows the events `without` forbids for
    the matched event (a row of `events` in the enclosing query): the same customer, `spec.type`,
    up to `at` (or within `spec.within`), not the event itself, the same values of `same`. A
    property missing on the matched event matches nothing, as for `not_followed_by`."""
    other = events.alias("without_event")
    clauses = [
        other.c.customer_id == events.c.customer_id,
        other.c.type == spec.type,
        other.c.occurred_at <= ctx.at_utc,
        other.c.pk != events.c.pk,  # "bought a category only once": an event is not its own other
        *(json_same(other.c.properties, events.c.properties, key, ctx.dialect) for key in spec.same),
    ]
    if spec.within is not None:
        clauses.append(other.c.occurred_at > ctx.at_utc - spec.within)
    return other, clauses


def without_clause(spec: Without, ctx: EvalContext) -> ColumnElement:
    """`without`: no such other event — a correlated NOT EXISTS that the (customer, type, time)
    index answers for each matched event."""
    _, clauses = other_events(spec, ctx)
    return ~sa.exists(sa.select(sa.literal(1)).where(*clauses))
