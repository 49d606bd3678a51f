"""Warnings from comparing rules with what the store holds: a typo in an event type, a property
name or a compared value silently empties an audience; here it gets a located warning with the
nearest real name ("did you mean purchase?")."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.audience.catalog import Catalog, FieldStats
from engine.audience.metrics import STORED
from engine.core.errors import Problem
from engine.core.fields import STANDARD_EVENT_TYPES
from engine.messages.actions import template_sources
from engine.messages.template_checks import attributes_read
from engine.rules.campaign import Campaign
from engine.rules.conditions import ConditionKind, Ops, walk
from engine.rules.journey import expand
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

    def event_type(self, name: str, loc: tuple) -> bool:
        """Warn when the store has never seen this event type; True when it has."""
        if name in self.catalog.events:
            return True
        self.warn(loc, f"event type {name!r} does not occur in the store" + _nearest(name, self.catalog.events))
        return False

    def follow_up(self, written: Any, loc: tuple) -> None:
        """`not_followed_by: TYPE` or `not_followed_by: {type: TYPE, same: […]}`."""
        if isinstance(written, str):
            self.event_type(written, loc + ("not_followed_by",))
        elif written is not None:
            self.event_type(written.type, loc + ("not_followed_by", "type"))

    def event(self, node: Any, loc: tuple) -> None:
        self.follow_up(node.not_followed_by, loc)
        if node.without is not None:
            self.event_type(node.without.type, loc + ("without", "type"))
        kind = self.catalog.events.get(node.event)
        if not self.event_type(node.event, loc + ("event",)) or kind is None:
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

    def received(self, node: Any, loc: tuple) -> None:
        if node.received.not_followed_by is not None:
            self.event_type(node.received.not_followed_by, loc + ("received", "not_followed_by"))

    def campaign_events(self, campaign: Campaign) -> None:
        """The event types a campaign names outside its conditions: trigger, goal, exit_on."""
        if campaign.trigger is not None:
            self.event_type(campaign.trigger.event, ("trigger", "event"))
            self.follow_up(campaign.trigger.not_followed_by, ("trigger",))
        if "goal" in campaign.model_fields_set:
            self.event_type(campaign.goal.event, ("goal", "event"))
        if campaign.exit_on is not None:
            self.event_type(campaign.exit_on.event, ("exit_on", "event"))

    def last_events(self, env: Any, templates_dir: Path, seen: set[tuple]) -> None:
        """`last.TYPE` in its templates — mostly under `{% if last.TYPE %}`, which is quietly false
        for any type, so a typo there would never show at render time."""
        known = set(self.catalog.events) | set(STANDARD_EVENT_TYPES)
        for step in expand(self.loaded.campaign):
            for attr, template, line in attributes_read(env, *template_sources(step), "last"):
                where = (str(templates_dir / template), line) if template else (self.loaded.path, None)
                if attr in known or (where, attr) in seen:
                    continue
                seen.add((where, attr))
                message = f"'last.{attr}': event type {attr!r} does not occur in the store"
                self.problems.append(
                    Problem(where[0], where[1], None, message + _nearest(attr, known), severity="warning")
                )

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
    seen: set[tuple] = set()  # a template shared by campaigns warns once
    for loaded in workspace.campaigns.values():
        checker = _Checker(loaded, catalog, metrics_filled)
        checker.campaign_events(loaded.campaign)
        nodes = (pair for condition, base in conditions_of(loaded.campaign) for pair in walk(condition, base))
        for node, loc in nodes:
            check = _CHECKS.get(node.kind)
            if check is not None:
                check(checker, node, loc)
        checker.last_events(workspace.environment(), workspace.templates_dir, seen)
        problems += checker.problems
    return problems


_CHECKS = {
    ConditionKind.EVENT: _Checker.event,
    ConditionKind.ATTRIBUTE: _Checker.attribute,
    ConditionKind.METRIC: _Checker.metric,
    ConditionKind.RECEIVED: _Checker.received,
}
