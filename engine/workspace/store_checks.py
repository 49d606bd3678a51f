"""Warnings from comparing rules with what the store holds: a typo in an event type, a property
name or a compared value silently empties an audience; here it gets a located warning with the
nearest real name ("did you mean purchase?")."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from engine.audience.catalog import Catalog, FieldStats
from engine.audience.metrics import STORED
from engine.core.errors import Problem
from engine.rules.conditions import ConditionKind, Ops, walk
from engine.workspace.loader import LoadedCampaign, Workspace, conditions_of


def _nearest(word: str, choices: Iterable[str]) -> str:
    options = [str(c) for c in choices]
    lowered = {c.lower(): c for c in options}
    if word.lower() in lowered:
        return f" (did you mean {lowered[word.lower()]}?)"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _compared(test: Any) -> list[Any]:
    """The literal values a where-test compares for equality (eq, ne, in, not_in, or a bare value)."""
    if not isinstance(test, Ops):
        return [test]
    name, value = test.operator
    if name in ("eq", "ne"):
        return [value]
    if name in ("in", "not_in"):
        return list(value)
    return []


def _value_warnings(stats: FieldStats, values: list[Any], where: str) -> list[str]:
    if not stats.categorical:
        return []
    known = {str(v) for v in stats.values}
    return [
        f"value {v!r} never occurs in {where} in the store{_nearest(str(v), known)}"
        for v in values
        if isinstance(v, str) and v not in known
    ]


class _Checker:
    def __init__(self, loaded: LoadedCampaign, catalog: Catalog, metrics_filled: bool):
        self.loaded, self.catalog, self.metrics_filled = loaded, catalog, metrics_filled
        self.problems: list[Problem] = []

    def warn(self, loc: tuple, message: str) -> None:
        line, col = self.loaded.located.position(loc)
        self.problems.append(Problem(self.loaded.path, line, col, message, severity="warning"))

    def event(self, node: Any, loc: tuple) -> None:
        kind = self.catalog.events.get(node.event)
        if kind is None:
            self.warn(
                loc + ("event",),
                f"event type {node.event!r} does not occur in the store" + _nearest(node.event, self.catalog.events),
            )
            return
        for key, test in (node.where or {}).items():
            stats = kind.properties.get(key)
            if stats is None:
                self.warn(
                    loc + ("where", key),
                    f"property {key!r} never appears on {node.event} events" + _nearest(key, kind.properties),
                )
                continue
            for message in _value_warnings(stats, _compared(test), f"{node.event}.{key}"):
                self.warn(loc + ("where", key), message)
        name, ops = node.aggregate
        of = getattr(ops, "of", None)
        if of is not None and of not in kind.properties:
            self.warn(
                loc + (name, "of"),
                f"property {of!r} never appears on {node.event} events" + _nearest(of, kind.properties),
            )

    def attribute(self, node: Any, loc: tuple) -> None:
        if not node.attribute.startswith("attributes."):
            stats = self.catalog.fields.get(node.attribute)
            where = node.attribute
        else:
            key = node.attribute.split(".", 1)[1]
            stats = self.catalog.attributes.get(key)
            where = node.attribute
            if stats is None:
                self.warn(
                    loc + ("attribute",),
                    f"no customer in the store has attribute {key!r}" + _nearest(key, self.catalog.attributes),
                )
                return
        if stats is not None:
            for message in _value_warnings(stats, _compared(node), where):
                self.warn(loc + (node.operator[0],), message)

    def metric(self, node: Any, loc: tuple) -> None:
        if node.metric in STORED and not self.metrics_filled:
            self.warn(
                loc + ("metric",),
                f"metric {node.metric} is empty until `nudge metrics refresh` has run "
                "(the daemon refreshes it daily): every customer fails this test now",
            )


def store_warnings(workspace: Workspace, catalog: Catalog, metrics_filled: bool) -> list[Problem]:
    """Warnings for every campaign's audience and `when` conditions against the catalog."""
    problems: list[Problem] = []
    for loaded in workspace.campaigns.values():
        checker = _Checker(loaded, catalog, metrics_filled)
        nodes = (pair for condition, base in conditions_of(loaded.campaign) for pair in walk(condition, base))
        for node, loc in nodes:
            if node.kind is ConditionKind.EVENT:
                checker.event(node, loc)
            elif node.kind is ConditionKind.ATTRIBUTE:
                checker.attribute(node, loc)
            elif node.kind is ConditionKind.METRIC:
                checker.metric(node, loc)
        problems += checker.problems
    return problems
