"""`nudge explain`: one customer through one audience tree, with the value each test saw."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.audience.compiler import (
    EvalContext,
    aggregate_value,
    attribute_value,
    compile_condition,
    event_filters,
    json_kind,
)
from engine.audience.operators import other_events
from engine.audience.received import received_value
from engine.core.clock import aware_utc, iso_utc
from engine.core.durations import format_duration
from engine.core.errors import Problem, UserInputError
from engine.rules.campaign import Campaign
from engine.rules.conditions import (
    Aggregate,
    AttributeCondition,
    BirthdayCondition,
    ConditionKind,
    EventCondition,
    MetricCondition,
    children,
)
from engine.rules.describe import describe
from engine.store.sqljson import json_value
from engine.store.tables import customers, events


@dataclass
class Node:
    label: str
    passed: bool
    value: Any = None
    children: list[Node] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "condition": self.label,
            "passed": self.passed,
            "value": self.value,
            "children": [c.as_json() for c in self.children],
        }


def _scalar(conn: Connection, query: sa.Select) -> Any:
    return conn.execute(query).scalar()


def _passes(conn: Connection, cond: Any, ctx: EvalContext, customer_id: str) -> bool:
    test = sa.func.coalesce(compile_condition(cond, ctx), sa.false())
    return bool(_scalar(conn, sa.select(sa.case((test, 1), else_=0)).where(customers.c.id == customer_id)))


def _event_value(conn: Connection, cond: EventCondition, ctx: EvalContext, customer_id: str) -> Any:
    filters = [events.c.customer_id == customer_id, *event_filters(cond, ctx)]
    name, ops, agg = aggregate_value(cond, ctx)
    if name == "latest":
        assert isinstance(ops, Aggregate)
        prop = json_value(events.c.properties, ops.of, json_kind(ops), ctx.dialect)
        value = _scalar(
            conn, sa.select(prop).where(*filters).order_by(events.c.occurred_at.desc(), events.c.pk.desc()).limit(1)
        )
    else:
        assert agg is not None
        value = _scalar(conn, sa.select(agg).where(*filters))
    found: dict[str, Any] = {name: value}
    last = _scalar(conn, sa.select(sa.func.max(events.c.occurred_at)).where(*filters))
    found["last_at"] = iso_utc(last)
    follow = cond.follow
    if follow is not None and last is not None:
        later = _scalar(
            conn,
            sa.select(sa.func.min(events.c.occurred_at)).where(
                events.c.customer_id == customer_id,
                events.c.type == follow.type,
                events.c.occurred_at > last,
                events.c.occurred_at <= ctx.at_utc,
            ),
        )
        # With `same`, explain's pass/fail is exact (the compiled test); this is any later one.
        found[f"next_{follow.type}_at"] = iso_utc(later)
    if cond.without is not None:
        found["without"] = _without_value(conn, cond, ctx, customer_id)
    return found


def _without_value(conn: Connection, cond: EventCondition, ctx: EvalContext, customer_id: str) -> str | None:
    """In words, for the most recent event `without` let through: "no purchase of category shoes
    ever"; when it let none through, for the most recent one it stopped, the event that stopped
    it: "purchase of category shoes at 2026-05-01T09:00:00+00:00". None: no such event at all."""
    spec = cond.without
    assert spec is not None
    newest = (events.c.occurred_at.desc(), events.c.pk.desc())
    mine = events.c.customer_id == customer_id
    kept = conn.execute(
        sa.select(events.c.properties).where(mine, *event_filters(cond, ctx)).order_by(*newest).limit(1)
    ).first()
    if kept is not None:
        span = f"within {format_duration(spec.within)}" if spec.within is not None else "ever"
        return f"no {spec.type}{_same_values(spec.same, kept.properties)} {span}"
    plain = cond.model_copy(update={"without": None})
    other, clauses = other_events(spec, ctx)
    stopped = (
        sa.select(events.c.properties, other.c.occurred_at)
        .where(mine, *event_filters(plain, ctx), *clauses)
        .order_by(*newest, other.c.occurred_at.desc())
        .limit(1)
    )
    found = conn.execute(stopped).first()
    if found is None:
        return None
    return f"{spec.type}{_same_values(spec.same, found.properties)} at {iso_utc(found.occurred_at)}"


def _same_values(keys: list[str], properties: dict[str, Any] | None) -> str:
    """ " of category shoes and size 42": the values an event of the other type would have to share."""
    if not keys:
        return ""
    values = properties or {}
    return " of " + " and ".join(f"{key} {values.get(key, '(missing)')}" for key in keys)


def _birthday_value(conn: Connection, cond: BirthdayCondition, ctx: EvalContext, customer_id: str) -> Any:
    row = conn.execute(sa.select(customers.c.birthday, customers.c.timezone).where(customers.c.id == customer_id)).one()
    zone = row.timezone or ctx.timezone
    at = aware_utc(ctx.at)
    target = at.astimezone(ZoneInfo(zone)).date() + timedelta(days=int(cond.birthday.in_.total_seconds() // 86400))
    return {"birthday": row.birthday, "timezone": zone, "celebrating_on": target.isoformat()}


def _attribute_value(conn: Connection, cond: AttributeCondition, ctx: EvalContext, customer_id: str) -> Any:
    value = _scalar(conn, sa.select(attribute_value(cond.attribute, cond, ctx)).where(customers.c.id == customer_id))
    return value.isoformat() if hasattr(value, "isoformat") else value


def _metric_value(conn: Connection, cond: MetricCondition, ctx: EvalContext, customer_id: str) -> Any:
    from engine.audience.metrics import metric_query

    query = metric_query(cond.metric, ctx).subquery("metric")
    return _scalar(conn, sa.select(query.c.value).where(query.c.id == customer_id))


# The value each kind of leaf saw for one customer; boolean nodes and segments show none.
VALUES: dict[ConditionKind, Callable[[Connection, Any, EvalContext, str], Any]] = {
    ConditionKind.ATTRIBUTE: _attribute_value,
    ConditionKind.EVENT: _event_value,
    ConditionKind.BIRTHDAY: _birthday_value,
    ConditionKind.METRIC: _metric_value,
    ConditionKind.RECEIVED: received_value,
}


def _value(conn: Connection, cond: Any, ctx: EvalContext, customer_id: str) -> Any:
    reader = VALUES.get(cond.kind)
    return reader(conn, cond, ctx, customer_id) if reader else None


def explain_condition(conn: Connection, cond: Any, ctx: EvalContext, customer_id: str) -> Node:
    """Evaluate every node of the tree for one customer."""
    kids = [child for _, child in children(cond)]
    if cond.kind is ConditionKind.SEGMENT:
        kids = [(ctx.segments or {})[cond.segment]]
    return Node(
        label=describe(cond),
        passed=_passes(conn, cond, ctx, customer_id),
        value=_value(conn, cond, ctx, customer_id),
        children=[explain_condition(conn, child, ctx, customer_id) for child in kids],
    )


def require_customer(conn: Connection, customer_id: str) -> None:
    if _scalar(conn, sa.select(customers.c.id).where(customers.c.id == customer_id)) is None:
        raise UserInputError([Problem("<customer>", None, None, f"no customer with id {customer_id!r} in the store")])


def explain(conn: Connection, campaign: Campaign, ctx: EvalContext, customer_id: str) -> Node:
    require_customer(conn, customer_id)
    return explain_condition(conn, campaign.audience, ctx, customer_id)
