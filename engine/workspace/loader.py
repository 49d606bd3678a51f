"""A workspace folder → validated config, campaigns, segments and templates, every problem at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.audience.compiler import ConditionError, EvalContext, compile_condition
from engine.core.errors import Problem, UserInputError
from engine.core.fields import check_attribute_name
from engine.messages.formatting import RenderSettings
from engine.messages.templates import make_environment
from engine.rules.actions import (
    action_kind,
    action_when,
)
from engine.rules.campaign import Campaign, SegmentsFile
from engine.rules.channels_config import IMPLICIT_TOPIC
from engine.rules.conditions import ConditionKind, walk
from engine.rules.config import Config, load_config
from engine.rules.journey import expand
from engine.rules.nesting import nesting_problem, segment_depths
from engine.rules.problems import validate
from engine.rules.yamlsource import Located, read_yaml
from engine.workspace.template_problems import action_groups, raw_template_problems, template_problems

SEGMENTS_FILE = "segments.yaml"
RULE_SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadedCampaign:
    campaign: Campaign
    path: str
    located: Located


@dataclass
class Rules:
    campaigns: dict[str, LoadedCampaign] = field(default_factory=dict)
    segments: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)  # rule files that could not be used as they are


@dataclass
class Workspace:
    """Everything a command needs, passed explicitly (no global state)."""

    root: Path
    config: Config
    campaigns: dict[str, LoadedCampaign]
    segments: dict[str, Any]
    _environment: Any = field(default=None, repr=False)

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def rules_dir(self) -> Path:
        return self.root / "rules"

    def environment(self):
        """The workspace's Jinja environment, built once (it caches compiled templates)."""
        if self._environment is None:
            self._environment = make_environment(self.templates_dir, render_settings(self.config))
        return self._environment

    def select(self, names: list[str] | tuple[str, ...] = ()) -> list[Campaign]:
        """What to run or plan, highest priority first: the campaigns named (all enabled ones when
        none), a journey as its steps in order; CAMPAIGN/STEP names one step."""
        if not names:
            return runnable(c.campaign for c in self.campaigns.values() if c.campaign.enabled)
        steps = {s.campaign: s for loaded in self.campaigns.values() for s in expand(loaded.campaign)}
        unknown = [n for n in names if n not in self.campaigns and n not in steps]
        if unknown:
            known = ", ".join(sorted(self.campaigns)) or "none"
            raise UserInputError(
                [Problem(str(self.rules_dir), None, None, f"unknown campaign {n!r}; known: {known}") for n in unknown]
            )
        whole = runnable(self.campaigns[n].campaign for n in names if n in self.campaigns)
        return whole + [steps[n] for n in names if n not in self.campaigns and steps[n] not in whole]


def render_settings(config: Config) -> RenderSettings:
    """What config says about rendering messages: locale, currency, time zone, CSS inlining."""
    return RenderSettings(
        config.locales.default,
        tuple(config.locales.supported),
        config.currency,
        config.timezone,
        config.email.inline_css,
    )


def runnable(campaigns: Iterable[Campaign]) -> list[Campaign]:
    """Highest priority first (the frequency cap favours it), each journey as its steps in order."""
    ordered = sorted(campaigns, key=lambda c: (-c.priority, c.campaign))
    return [unit for campaign in ordered for unit in expand(campaign)]


# Leaves compiled at load time (without a store) so an operand of the wrong type is located.
LEAVES = frozenset(
    {ConditionKind.ATTRIBUTE, ConditionKind.EVENT, ConditionKind.BIRTHDAY, ConditionKind.METRIC, ConditionKind.RECEIVED}
)
_CHECK_AT = datetime(2000, 1, 1, tzinfo=timezone.utc)


def _leaf_problem(node: Any, loc: tuple, located: Located, segments: dict[str, Any]) -> Problem | None:
    """Compile one leaf without a store, so an operand of the wrong type is reported at its line."""
    ctx = EvalContext(at=_CHECK_AT, timezone="UTC", dialect="sqlite", segments=segments)
    try:
        compile_condition(node, ctx, loc)
    except ConditionError as exc:
        line, col = located.position(exc.loc)
        return Problem(located.path, line, col, str(exc))
    return None


def _condition_problems(condition: Any, loc: tuple, located: Located, segments: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for node, at in walk(condition, loc):
        if node.kind is ConditionKind.ATTRIBUTE and (reason := check_attribute_name(node.attribute)):
            line, col = located.position(at + ("attribute",))
            problems.append(Problem(located.path, line, col, reason))
        elif node.kind in LEAVES:
            if (found := _leaf_problem(node, at, located, segments)) is not None:
                problems.append(found)
        elif node.kind is ConditionKind.SEGMENT and node.segment not in segments:
            line, col = located.position(at + ("segment",))
            known = ", ".join(sorted(segments)) or "none (define them in rules/segments.yaml)"
            problems.append(Problem(located.path, line, col, f"unknown segment {node.segment!r}; known: {known}"))
    return problems


def _segment_cycles(segments: dict[str, Any], located: Located) -> list[Problem]:
    def refs(condition: Any) -> list[str]:
        return [node.segment for node, _ in walk(condition) if node.kind is ConditionKind.SEGMENT] if condition else []

    problems = []
    for start in segments:
        stack: list[tuple[str, tuple[str, ...]]] = [(start, (start,))]
        seen: set[str] = set()
        while stack:
            name, trail = stack.pop()
            for ref in refs(segments.get(name)):
                if ref == start:
                    line, col = located.position(("segments", start))
                    problems.append(
                        Problem(located.path, line, col, "segment refers to itself: " + " -> ".join(trail + (ref,)))
                    )
                    stack.clear()
                    break
                if ref in segments and ref not in seen:
                    seen.add(ref)
                    stack.append((ref, trail + (ref,)))
    return problems


def load_segments(rules_dir: Path) -> tuple[dict[str, Any], list[Problem]]:
    file = rules_dir / SEGMENTS_FILE
    if not file.exists():
        return {}, []
    try:
        located = read_yaml(file)
        parsed = validate(SegmentsFile, located)
    except UserInputError as exc:
        return {}, exc.problems
    segments = dict(parsed.segments)
    problems = _segment_cycles(segments, located)
    depths = segment_depths(segments)
    for name, condition in segments.items():
        if reason := nesting_problem(condition, depths):
            problems.append(Problem(located.path, *located.position(("segments", name), prefer_key=True), reason))
            continue
        problems += _condition_problems(condition, ("segments", name), located, segments)
    return segments, problems


def conditions_of(campaign: Campaign) -> list[tuple[Any, tuple]]:
    """Every condition tree of a campaign with its YAML path: the audience, each journey step's
    `when`, then each action's `when`."""
    found: list[tuple[Any, tuple]] = [(campaign.audience, ("audience",))]
    found += [(s.when, ("steps", i, "when")) for i, s in enumerate(campaign.steps or []) if s.when is not None]
    for actions, base in action_groups(campaign):
        for i, action in enumerate(actions):
            when = action_when(action)
            if when is None:
                continue
            if action.when is not None:
                found.append((when, base + (i, "when")))
            else:
                found.append((when, base + (i, action_kind(action), "when")))
    return found


def load_campaign_file(
    file: Path, segments: dict[str, Any], templates_dir: Path
) -> tuple[LoadedCampaign | None, list[Problem]]:
    """Load one rule file; return it with its problems (None when it cannot be used)."""
    try:
        located = read_yaml(file)
        if not isinstance(located.data, dict):
            return None, [Problem(str(file), 1, 1, "a rule file must be a mapping starting with `campaign:`")]
        campaign = validate(Campaign, located)
    except UserInputError as exc:
        # The shape is wrong somewhere; what can still be checked on the raw file is reported too.
        raw = located.data if "located" in locals() and isinstance(located.data, dict) else {}
        return None, exc.problems + raw_template_problems(raw, located, templates_dir) if raw else exc.problems
    problems: list[Problem] = []
    depths = segment_depths(segments)
    for condition, loc in conditions_of(campaign):
        if reason := nesting_problem(condition, depths):
            problems.append(Problem(located.path, *located.position(loc), reason))
            continue
        problems += _condition_problems(condition, loc, located, segments)
    problems += template_problems(campaign, located, templates_dir, segments)
    return LoadedCampaign(campaign, str(file), located), problems


def load_rules(root: Path, groups: Iterable[str] | None = None, topics: Iterable[str] | None = None) -> Rules:
    """Load every rule file in DIR/rules, collecting all problems rather than stopping at the first.
    `groups`: the exclusive groups config.yaml declares (limits.exclusive); None when the config
    could not be read, and then nothing is checked against it (its own error says what is wrong).
    `topics`: the subscription topics it declares (or the implicit one), likewise."""
    rules_dir, templates_dir = root / "rules", root / "templates"
    result = Rules()
    if not rules_dir.is_dir():
        result.problems.append(Problem(str(rules_dir), None, None, "no rules/ folder in this workspace"))
        return result
    result.segments, result.problems = load_segments(rules_dir)
    if result.problems:
        result.failed.add(str(rules_dir / SEGMENTS_FILE))
    files = sorted(p for p in rules_dir.iterdir() if p.suffix in RULE_SUFFIXES and p.name != SEGMENTS_FILE)
    for file in files:
        loaded, problems = load_campaign_file(file, result.segments, templates_dir)
        result.problems += problems
        if loaded is None or problems:
            result.failed.add(str(file))
            continue
        name = loaded.campaign.campaign
        if name in result.campaigns:
            line, col = loaded.located.position(("campaign",))
            result.problems.append(
                Problem(str(file), line, col, f"campaign {name!r} is already defined in {result.campaigns[name].path}")
            )
            continue
        result.campaigns[name] = loaded
    result.problems += _unknown_received(result)
    if groups is not None:
        result.problems += _undeclared_groups(result, set(groups))
    if topics is not None:
        result.problems += _unknown_topics(result, list(topics))
    return result


def config_topics(config: Config) -> list[str]:
    """The topics campaigns may name: config.yaml's, or the one implicit topic without them."""
    return list(config.topics) or [IMPLICIT_TOPIC]


def _unknown_topics(rules: Rules, topics: list[str]) -> list[Problem]:
    """`topic: NAME` must be a topic of config.yaml (without `topics:` there, only the implicit one)."""
    problems = []
    for loaded in rules.campaigns.values():
        topic = loaded.campaign.topic
        if topic is not None and topic not in topics:
            line, col = loaded.located.position(("topic",))
            hint = f"did you mean {_nearest_name(topic, topics)!r}? " if topics else ""
            message = f"topic {topic!r} is not in config.yaml topics ({', '.join(topics)}); {hint}declare it there"
            problems.append(Problem(loaded.path, line, col, message))
    return problems


def _nearest_name(word: str, choices: list[str]) -> str:
    import difflib

    return (difflib.get_close_matches(word, choices, n=1, cutoff=0.0) or choices)[0]


def _undeclared_groups(rules: Rules, groups: set[str]) -> list[Problem]:
    """`exclusive: GROUP` needs the group's window from config.yaml limits.exclusive."""
    problems = []
    for loaded in rules.campaigns.values():
        group = loaded.campaign.exclusive
        if group is not None and group not in groups:
            line, col = loaded.located.position(("exclusive",))
            declared = ", ".join(sorted(groups)) or "none"
            message = (
                f"exclusive group {group!r} is not in config.yaml limits.exclusive (declared: {declared}); "
                f"add e.g. `exclusive: {{{group}: 30d}}` under limits"
            )
            problems.append(Problem(loaded.path, line, col, message))
    return problems


def _unknown_received(rules: Rules) -> list[Problem]:
    """`received: {campaign: NAME}` must name a campaign of this workspace (or CAMPAIGN/STEP)."""
    problems = []
    for loaded in rules.campaigns.values():
        nodes = (pair for condition, base in conditions_of(loaded.campaign) for pair in walk(condition, base))
        for node, loc in nodes:
            if node.kind is ConditionKind.RECEIVED:
                name, _, step = node.received.campaign.partition("/")
                line, col = loaded.located.position(loc + ("received", "campaign"))
                if name not in rules.campaigns:
                    known = ", ".join(sorted(rules.campaigns))
                    problems.append(Problem(loaded.path, line, col, f"unknown campaign {name!r}; known: {known}"))
                    continue
                target = rules.campaigns[name].campaign
                steps = [s.name for s in target.steps or []]
                if step and step not in steps:
                    known = ", ".join(steps) if steps else f"none: {name} is not a journey"
                    problems.append(Problem(loaded.path, line, col, f"{name} has no step {step!r}; steps: {known}"))
                elif not step and steps:
                    problems.append(
                        Problem(loaded.path, line, col, f"{name} is a journey: name a step, e.g. {name}/{steps[0]}")
                    )
    return problems


def load_workspace(root: Path, *, need_rules: bool = True) -> Workspace:
    """Load config and rules of a workspace; raise UserInputError listing every problem."""
    problems: list[Problem] = []
    config = None
    try:
        config = load_config(root)
    except UserInputError as exc:
        problems += exc.problems
    rules = (
        load_rules(root, config.limits.exclusive, config_topics(config))
        if need_rules and config is not None
        else load_rules(root)
        if need_rules
        else Rules()
    )
    problems += rules.problems
    if problems:
        raise UserInputError(problems)
    assert config is not None
    return Workspace(root=root, config=config, campaigns=rules.campaigns, segments=rules.segments)
