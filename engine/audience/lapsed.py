"""Spotting "did X, but not within D" (a lapsed buyer) among the members of an `all`, so the
compiler can test the pair in one grouped pass over the events: the customer's latest such
event, up to `at`, is at or before at - D. The pair as written is a probe and an anti-probe of
each customer's events; PostgreSQL planned it as two hash joins, each aggregating every event."""

from __future__ import annotations

from typing import Any

from engine.audience.context import EvalContext
from engine.rules.conditions import EventCondition, Not, SegmentRef

# Where the pair as written is already the faster plan: SQLite probes each customer's events
# through the (customer, type, time) index faster than it groups all of them.
GROUPED_DIALECTS = frozenset({"postgresql"})


def lapsed_pairs(
    conds: list[Any], ctx: EvalContext
) -> tuple[dict[int, tuple[EventCondition, EventCondition]], set[int]]:
    """({index of a `did X`: (its event test, the negated `within` test)}, the indexes of those
    `not`s, which the pair replaces). Both must be plain presence tests of the same event with the
    same filters, the first unbounded in time, the second bounded by `within` alone; segments are
    looked through."""
    pairs: dict[int, tuple[EventCondition, EventCondition]] = {}
    absorbed: set[int] = set()
    if ctx.dialect not in GROUPED_DIALECTS:
        return pairs, absorbed
    ever: dict[str, int] = {}
    for index, cond in enumerate(conds):
        cond = _resolved(cond, ctx)
        if isinstance(cond, EventCondition) and cond.is_presence and _unbounded(cond):
            ever.setdefault(_bare(cond), index)
    for index, cond in enumerate(conds):
        inner = _resolved(cond.not_, ctx) if isinstance(cond, Not) else None
        if not (isinstance(inner, EventCondition) and inner.is_presence and inner.within is not None):
            continue
        if inner.before is not None or inner.between is not None:
            continue
        partner = ever.get(_bare(inner))
        if partner is not None and partner not in pairs:
            pairs[partner] = (_resolved(conds[partner], ctx), inner)
            absorbed.add(index)
    return pairs, absorbed


def _resolved(cond: Any, ctx: EvalContext) -> Any:
    """The condition a segment reference stands for (references of references too); an unknown
    segment stays a reference, for the compiler to report."""
    segments = ctx.segments or {}
    seen: set[str] = set()
    while isinstance(cond, SegmentRef) and cond.segment in segments and cond.segment not in seen:
        seen.add(cond.segment)
        cond = segments[cond.segment]
    return cond


def _unbounded(cond: EventCondition) -> bool:
    return cond.within is None and cond.before is None and cond.between is None


def _bare(cond: EventCondition) -> str:
    """What two event tests must share to pair: everything but the window and the template name."""
    return cond.model_copy(update={"within": None, "as_": None}).model_dump_json()
