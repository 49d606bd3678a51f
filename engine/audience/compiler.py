"""Condition → one SQLAlchemy Core expression over ``customers``, evaluated by the database at ``at``.

Every leaf becomes a set-based predicate: a list of ids (``customers.id IN (SELECT ... GROUP BY
...)``) where the list is short or can drive the query, a probe of the customer's own events
(``EXISTS``) where it matches many or is negated; the boolean nodes combine them (an ``any`` of
lists as one UNION). Values from rules are bound parameters; names from rules go
through the allow-list in fields.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, ColumnElement
from sqlalchemy.sql.selectable import CompoundSelect, ScalarSelect

from engine.audience.context import EvalContext, store_timezones
from engine.audience.journey import compile_journey
from engine.audience.lapsed import lapsed_pairs
from engine.audience.operators import (
    NUMERIC,
    compare,
    holds_for_nothing,
    json_compare,
    json_kind,
    not_followed_by,
    window_clauses,
    without_clause,
)
from engine.audience.received import compile_received
from engine.core.clock import aware_utc
from engine.core.errors import ConditionError
from engine.core.fields import ATTRIBUTE_PREFIX, CUSTOMER_FIELDS, STRING, check_operator
from engine.rules.conditions import (
    Aggregate,
    AllOf,
    AnyOf,
    AttributeCondition,
    BirthdayCondition,
    ConditionKind,
    EventCondition,
    MetricCondition,
    Not,
    Ops,
    SegmentRef,
    children,
)
from engine.store.sqljson import NUMBER, TEXT, json_value
from engine.store.tables import customers, events

# Other modules import these from here: the compiler is the audience stage's front door.
__all__ = [
    "COMPILERS",
    "NUMERIC",
    "EvalContext",
    "aggregate_value",
    "attribute_value",
    "audience_query",
    "compare",
    "compile_condition",
    "event_filters",
    "holds_for_nothing",
    "json_kind",
    "store_timezones",
]


def attribute_value(name: str, ops: Ops, ctx: EvalContext) -> ColumnElement:
    """The customer value an attribute condition reads (used by explain)."""
    if name.startswith(ATTRIBUTE_PREFIX):
        key = name[len(ATTRIBUTE_PREFIX) :]
        if ops.operator[0] == "exists":
            return json_value(customers.c.attributes, key, TEXT, ctx.dialect)
        return json_value(customers.c.attributes, key, json_kind(ops), ctx.dialect)
    return customers.c[name]


def _attribute(cond: AttributeCondition, ctx: EvalContext, loc: tuple) -> ColumnElement:
    name = cond.attribute
    if name.startswith(ATTRIBUTE_PREFIX):
        return json_compare(customers.c.attributes, name[len(ATTRIBUTE_PREFIX) :], cond, ctx, loc)
    if name not in CUSTOMER_FIELDS:
        raise ConditionError(f"unknown attribute {name!r}", loc + ("attribute",))
    reason = check_operator(name, cond.operator[0])
    if reason:
        raise ConditionError(reason, loc + (cond.operator[0],))
    return compare(customers.c[name], cond, CUSTOMER_FIELDS[name], ctx, loc)


def event_filters(cond: EventCondition, ctx: EvalContext, loc: tuple = ()) -> list[ColumnElement]:
    """WHERE clauses on ``events`` for the type, the window (never after ``at``), ``where`` and
    ``without``."""
    clauses = [events.c.type == cond.event, *window_clauses(events.c.occurred_at, cond, ctx.at_utc)]
    for key, test in (cond.where or {}).items():
        ops = test if isinstance(test, Ops) else Ops(eq=test)
        clauses.append(json_compare(events.c.properties, key, ops, ctx, loc + ("where", key)))
    if cond.without is not None:
        clauses.append(without_clause(cond.without, ctx))
    return clauses


def aggregate_value(cond: EventCondition, ctx: EvalContext) -> tuple[str, Ops, ColumnElement | None]:
    """(aggregate name, its test, the SQL aggregate); None for ``latest``, which is a window pick."""
    name, ops = cond.aggregate
    if name == "count":
        return name, ops, sa.func.count()
    assert isinstance(ops, Aggregate)
    prop = json_value(events.c.properties, ops.of, NUMBER, ctx.dialect)
    if name == "sum":
        return name, ops, sa.func.coalesce(sa.func.sum(prop), 0)
    if name == "latest":
        return name, ops, None
    reducers: dict[str, Callable[[ColumnElement[Any]], ColumnElement[Any]]] = {
        "avg": sa.func.avg,
        "min": sa.func.min,
        "max": sa.func.max,
    }
    return name, ops, reducers[name](prop)


def _latest_matching(cond: EventCondition, ctx: EvalContext, loc: tuple, columns: list) -> sa.Subquery:
    ranked = (
        sa.select(
            events.c.customer_id,
            events.c.occurred_at,
            *columns,
            sa.func.row_number()
            .over(partition_by=events.c.customer_id, order_by=(events.c.occurred_at.desc(), events.c.pk.desc()))
            .label("rank"),
        )
        .where(*event_filters(cond, ctx, loc))
        .subquery()
    )
    return sa.select(ranked).where(ranked.c.rank == 1).subquery()


def _keyed(cond: EventCondition, ctx: EvalContext, loc: tuple) -> ColumnElement:
    """Customers whose most recent matching event has no later event of the follow-up type with
    the same values of the `same` properties (the event itself must exist)."""
    follow = cond.follow
    assert follow is not None
    latest = _latest_matching(cond, ctx, loc, [events.c.properties])
    later = not_followed_by(
        follow.type, ctx, latest.c.customer_id, latest.c.occurred_at, follow.same, latest.c.properties
    )
    return customers.c.id.in_(sa.select(latest.c.customer_id).where(later))


def _present(cond: EventCondition, ctx: EvalContext, loc: tuple) -> ColumnElement:
    return sa.exists().where(events.c.customer_id == customers.c.id, *event_filters(cond, ctx, loc))


def _event(cond: EventCondition, ctx: EvalContext, loc: tuple) -> ColumnElement:
    follow = cond.follow
    if follow is not None and follow.same:
        # The aggregate test as written, and the keyed follow-up on the most recent matching event.
        unkeyed = cond.model_copy(update={"not_followed_by": None})
        return sa.and_(_event(unkeyed, ctx, loc), _keyed(cond, ctx, loc))
    name, ops, agg = aggregate_value(cond, ctx)
    agg_loc = loc + (name,)
    if name == "latest":
        assert isinstance(ops, Aggregate)
        latest = _latest_matching(cond, ctx, loc, [events.c.properties])
        test = json_compare(latest.c.properties, ops.of, ops, ctx, agg_loc)
        picked = sa.select(latest.c.customer_id).where(test)
        if follow is not None:
            picked = picked.where(not_followed_by(follow.type, ctx, latest.c.customer_id, latest.c.occurred_at))
        elif holds_for_nothing(ops, None):
            without = sa.select(events.c.customer_id).where(*event_filters(cond, ctx, loc))
            return sa.or_(customers.c.id.in_(picked), customers.c.id.not_in(without))
        return customers.c.id.in_(picked)

    assert agg is not None
    test = compare(agg, ops, NUMERIC, ctx, agg_loc)
    grouped = sa.select(events.c.customer_id).where(*event_filters(cond, ctx, loc)).group_by(events.c.customer_id)
    if follow is not None:
        summary = grouped.add_columns(sa.func.max(events.c.occurred_at).label("last_at")).having(test).subquery()
        picked = sa.select(summary.c.customer_id).where(
            not_followed_by(follow.type, ctx, summary.c.customer_id, summary.c.last_at)
        )
        return customers.c.id.in_(picked)
    empty = 0 if name in ("count", "sum") else None
    if cond.is_presence:
        # The common case, `has at least one`: no grouping needed. Unbounded in time it matches
        # many customers, and probing each customer's own events (customer, type, time index)
        # beats listing every matching event; a window lists few, and that list can drive the query.
        if cond.within is None and cond.between is None:
            return _present(cond, ctx, loc)
        return customers.c.id.in_(sa.select(events.c.customer_id).where(*event_filters(cond, ctx, loc)))
    if holds_for_nothing(ops, empty):
        failing = grouped.having(sa.not_(sa.func.coalesce(test, sa.false())))
        return customers.c.id.not_in(failing)
    return customers.c.id.in_(grouped.having(test))


def birthday_targets(days: int, ctx: EvalContext) -> dict[tuple[int, int], list[str]]:
    """(month, day) to celebrate → the zones where that is `days` after today's local date."""
    zones = set(ctx.timezones) | {ctx.timezone}
    at = aware_utc(ctx.at)
    targets: dict[tuple[int, int], list[str]] = {}
    for zone in sorted(zones):
        local = at.astimezone(ZoneInfo(zone)).date() + timedelta(days=days)
        targets.setdefault((local.month, local.day), []).append(zone)
    return targets


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _birthday(cond: BirthdayCondition, ctx: EvalContext) -> ColumnElement:
    days = int(cond.birthday.in_.total_seconds() // 86400)
    zone = sa.func.coalesce(customers.c.timezone, ctx.timezone)
    at = aware_utc(ctx.at)
    branches = []
    for (month, day), zones in birthday_targets(days, ctx).items():
        dates = [sa.and_(customers.c.birth_month == month, customers.c.birth_day == day)]
        local_year = (at.astimezone(ZoneInfo(zones[0])).date() + timedelta(days=days)).year
        if (month, day) == (2, 28) and not _is_leap(local_year):
            # Feb 29 birthdays are celebrated on Feb 28 in non-leap years.
            dates.append(sa.and_(customers.c.birth_month == 2, customers.c.birth_day == 29))
        branches.append(sa.and_(zone.in_(zones), sa.or_(*dates)))
    return sa.or_(*branches) if branches else sa.false()


def _metric(cond: MetricCondition, ctx: EvalContext, loc: tuple) -> ColumnElement:
    from engine.audience.metrics import NUMERIC as METRIC_NUMERIC
    from engine.audience.metrics import check_metric_name, label_problem, metric_kind, metric_query

    reason = check_metric_name(cond.metric)
    if reason:
        raise ConditionError(reason, loc + ("metric",))
    if cond.operator[0] in ("older_than", "newer_than"):
        raise ConditionError(
            f"{cond.operator[0]} applies to timestamps, not metric {cond.metric!r}", loc + (cond.operator[0],)
        )
    problem = label_problem(cond)
    if problem is not None:
        raise ConditionError(problem[1], loc + (problem[0],))
    query = metric_query(cond.metric, ctx).subquery("metric")
    kind = NUMERIC if metric_kind(cond.metric) == METRIC_NUMERIC else STRING
    return customers.c.id.in_(sa.select(query.c.id).where(compare(query.c.value, cond, kind, ctx, loc)))


# --- tree ---------------------------------------------------------------------------------


def _all(cond: AllOf, ctx: EvalContext, loc: tuple) -> ColumnElement:
    steps = children(cond)
    pairs, absorbed = lapsed_pairs([child for _, child in steps], ctx)
    parts = []
    for index, (step, child) in enumerate(steps):
        # Each member compiled as written even when paired: a mistake in it is reported as on
        # any database (inside a segment: named by the segment), before the pair replaces it.
        written = compile_condition(child, ctx, loc + step)
        if index in pairs:
            parts.append(_last_before(*pairs[index], ctx, loc + step))
        elif index not in absorbed:
            parts.append(written)
    return sa.and_(*parts)


def _last_before(ever: EventCondition, recent: EventCondition, ctx: EvalContext, loc: tuple) -> ColumnElement:
    """Has such an event, none in the last D: its latest one (up to `at`) is at or before at - D.
    One grouped pass over the events, as an expert writes it, instead of a join and an anti-join."""
    assert recent.within is not None
    latest = sa.func.max(events.c.occurred_at)
    grouped = sa.select(events.c.customer_id).where(*event_filters(ever, ctx, loc)).group_by(events.c.customer_id)
    return customers.c.id.in_(grouped.having(latest <= ctx.at_utc - recent.within))


def _membership(test: ColumnElement) -> sa.SelectBase | None:
    """The SELECT of a `customers.id IN (SELECT …)` test, or None for any other test."""
    if (
        isinstance(test, BinaryExpression)
        and test.operator is operators.in_op
        and test.left is customers.c.id
        and isinstance(test.right, ScalarSelect)
    ):
        return test.right.element
    return None


def _any(cond: AnyOf, ctx: EvalContext, loc: tuple) -> ColumnElement:
    parts = [compile_condition(c, ctx, loc + step) for step, c in children(cond)]
    lists = [_membership(part) for part in parts]
    if len(parts) < 2 or any(found is None for found in lists):
        return sa.or_(*parts)
    # One list of ids (a UNION) rather than an OR of lists: PostgreSQL tests every customer
    # against each list of an OR, but can drive the query from a single list. A nested `any`
    # is already a UNION: its members join this one (SQLite refuses a parenthesised UNION).
    members: list[sa.SelectBase] = []
    for found in lists:
        if isinstance(found, CompoundSelect) and found.keyword.name == "UNION":
            members += found.selects
        elif found is not None:
            members.append(found)
    return customers.c.id.in_(sa.union(*members))


def _not(cond: Not, ctx: EvalContext, loc: tuple) -> ColumnElement:
    inner = cond.not_
    if isinstance(inner, EventCondition) and inner.is_presence:
        # A negated test cannot drive the query, so a list of matching events only costs: probe
        # each customer's events instead. EXISTS is never null, so no coalesce.
        return ~_present(inner, ctx, loc + ("not",))
    # Two-valued logic for marketers: a missing value makes a test false, so its negation true.
    return sa.not_(sa.func.coalesce(compile_condition(cond.not_, ctx, loc + ("not",)), sa.false()))


def _segment(cond: SegmentRef, ctx: EvalContext, loc: tuple) -> ColumnElement:
    segments = ctx.segments or {}
    if cond.segment not in segments:
        raise ConditionError(f"unknown segment {cond.segment!r}", loc + ("segment",))
    try:
        return compile_condition(segments[cond.segment], ctx)
    except ConditionError as exc:
        raise ConditionError(f"in segment {cond.segment!r}: {exc}", loc + ("segment",)) from None


COMPILERS: dict[ConditionKind, Callable[[Any, EvalContext, tuple], ColumnElement]] = {
    ConditionKind.ALL: _all,
    ConditionKind.ANY: _any,
    ConditionKind.NOT: _not,
    ConditionKind.ATTRIBUTE: _attribute,
    ConditionKind.EVENT: _event,
    ConditionKind.BIRTHDAY: lambda cond, ctx, loc: _birthday(cond, ctx),
    ConditionKind.METRIC: _metric,
    ConditionKind.SEGMENT: _segment,
    ConditionKind.RECEIVED: compile_received,
    ConditionKind.JOURNEY: compile_journey,
}


def compile_condition(cond: Any, ctx: EvalContext, loc: tuple = ()) -> ColumnElement:
    """A boolean SQL expression over ``customers`` that is true for the matching customers."""
    return COMPILERS[cond.kind](cond, ctx, loc)


def audience_query(cond: Any, ctx: EvalContext) -> sa.Select:
    """SELECT customers.id of everyone matching, ordered by id."""
    return sa.select(customers.c.id).where(compile_condition(cond, ctx)).order_by(customers.c.id)
