"""`nudge diff`: what a change to the rules does to the audiences, for code review.

For every campaign whose own inputs differ between a git revision and the working tree (its
rule file, a segment it uses, a template in its own extends/include/import chain, config.yaml;
journeys included), both versions are planned at the same instant against the same store: matched
and targeted at each, and who is added and removed. Nothing is written."""

from __future__ import annotations

import posixpath
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from sqlalchemy.engine import Connection

from engine.audience.planner import Planner
from engine.core.errors import Problem, UserInputError
from engine.rules.actions import EmailAction
from engine.rules.campaign import Campaign
from engine.rules.conditions import ConditionKind, walk
from engine.rules.journey import expand
from engine.workspace.loader import Workspace, action_groups, conditions_of, load_workspace

SAMPLE_IDS = 10
TRACKED = ("config.yaml", "rules", "templates")
TEMPLATES = "templates/"


@dataclass
class CampaignDiff:
    campaign: str
    change: str  # changed | added | removed
    base: dict[str, int] = field(default_factory=lambda: {"matched": 0, "targeted": 0})
    head: dict[str, int] = field(default_factory=lambda: {"matched": 0, "targeted": 0})
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    because: list[str] = field(default_factory=list)  # the inputs that differ: files, "segment NAME"

    @property
    def audience_changed(self) -> bool:
        return bool(self.added or self.removed) or self.base != self.head

    def as_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "change": self.change,
            "because": self.because,
            "base": self.base,
            "head": self.head,
            "audience_changed": self.audience_changed,
            "added": len(self.added),
            "removed": len(self.removed),
            "added_sample": self.added[:SAMPLE_IDS],
            "removed_sample": self.removed[:SAMPLE_IDS],
        }


def _git(root: Path, *args: str) -> bytes:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise UserInputError([Problem("--base", None, None, f"git: {reason[-1] if reason else 'failed'}")])
    return done.stdout


def files_at(root: Path, rev: str) -> dict[str, bytes]:
    """The workspace's tracked files (config, rules, templates) as they were at `rev`."""
    listed = _git(root, "ls-tree", "-r", "--name-only", rev, "--", *TRACKED).decode().splitlines()
    return {path: _git(root, "show", f"{rev}:./{path}") for path in listed}


def files_now(root: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for name in TRACKED:
        target = root / name
        paths = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
        for path in paths:
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def _base_workspace(files: dict[str, bytes], current: Workspace, folder: Path) -> Workspace:
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    if "config.yaml" not in files:
        (folder / "config.yaml").write_bytes((current.root / "config.yaml").read_bytes())
    try:
        return load_workspace(folder)
    except UserInputError as exc:
        raise UserInputError(
            [Problem("--base", None, None, f"the rules at the base revision do not validate: {exc.problems[0]}")]
        ) from None


def _inputs(workspace: Workspace, name: str, files: dict[str, bytes]) -> dict[str, Any]:
    """Every input that decides what a campaign does, by label: its rule file, the definition of
    each segment it uses (directly or through another segment), each template in its own chain,
    and config.yaml (limits and consent apply to every campaign)."""
    loaded = workspace.campaigns[name]
    campaign = loaded.campaign
    used: dict[str, Any] = {"rule": files.get(Path(loaded.path).relative_to(workspace.root).as_posix())}
    for segment in sorted(_segments_used(campaign, workspace.segments)):
        definition = workspace.segments.get(segment)
        used[f"segment {segment}"] = None if definition is None else definition.model_dump(mode="json", by_alias=True)
    chain = template_chain(_templates_named(campaign), files)
    for path in sorted(chain if chain is not None else (p for p in files if p.startswith(TEMPLATES))):
        used[path] = files.get(path)
    used["config.yaml"] = files.get("config.yaml")
    return used


def _segments_used(campaign: Campaign, segments: dict[str, Any]) -> set[str]:
    """Segments named anywhere in the campaign (audience, steps, actions), and those they name."""
    pending = [node.segment for tree, _ in conditions_of(campaign) for node, _ in walk(tree) if _is_segment(node)]
    found: set[str] = set()
    while pending:
        segment = pending.pop()
        if segment in found:
            continue
        found.add(segment)
        if segment in segments:
            pending += [node.segment for node, _ in walk(segments[segment]) if _is_segment(node)]
    return found


def _is_segment(node: Any) -> bool:
    return node.kind is ConditionKind.SEGMENT


def _templates_named(campaign: Campaign) -> list[str]:
    """The template files the campaign's emails name: every variant, every journey step."""
    names = []
    for actions, _ in action_groups(campaign):
        for action in actions:
            if isinstance(action, EmailAction):
                spec = action.email
                names += [v.template for v in spec.variants] if spec.variants else [spec.template or ""]
    return [n for n in names if n]


def template_chain(names: list[str], files: dict[str, bytes]) -> set[str] | None:
    """Paths (templates/...) of these templates, their locale variants (`x.zh-CN.html.j2` beside
    `x.html.j2`) and every template they reach through extends, include and import; None when one
    names a template only known at run time or does not parse (then every template counts)."""
    parser = jinja2.Environment()
    pending, found = list(names), set()
    while pending:
        name = pending.pop()
        path = TEMPLATES + name
        if path in found:
            continue
        found.add(path)
        pending += _locale_variants(name, files)
        if path not in files:
            continue  # missing here: its absence is compared (base and head differ if it appears)
        try:
            tree = parser.parse(files[path].decode("utf-8"))
        except (jinja2.TemplateSyntaxError, UnicodeDecodeError):
            return None
        for ref in meta.find_referenced_templates(tree):
            if ref is None:
                return None
            pending.append(posixpath.normpath(ref))
    return found


_LOCALE = re.compile(r"[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


def _locale_variants(name: str, files: dict[str, bytes]) -> list[str]:
    """`welcome.zh-CN.html.j2` and `welcome.zh.html.j2` for `welcome.html.j2`: what a customer's
    locale picks instead of it."""
    folder, _, base = name.rpartition("/")
    stem, dot, suffix = base.partition(".")
    if not dot:
        return []
    prefix = TEMPLATES + (folder + "/" if folder else "") + stem + "."
    found = []
    for path in files:
        if path.startswith(prefix) and path.endswith("." + suffix):
            tag = path[len(prefix) : -len(suffix) - 1]
            if _LOCALE.fullmatch(tag):
                found.append(path[len(TEMPLATES) :])
    return found


def _label(workspace: Workspace, name: str, key: str) -> str:
    return Path(workspace.campaigns[name].path).relative_to(workspace.root).as_posix() if key == "rule" else key


def _plan(conn: Connection, workspace: Workspace, name: str, at: datetime) -> tuple[dict[str, int], set[str]]:
    planner = Planner(conn=conn, config=workspace.config, segments=workspace.segments, at=at)
    # A journey's audience is who enters it: its first step (the journey's audience, not already in it).
    plan = planner.plan(expand(workspace.campaigns[name].campaign)[0])
    return {"matched": plan.matched, "targeted": len(plan.targeted)}, set(plan.targeted)


def diff_campaigns(conn: Connection, head: Workspace, base_rev: str, at: datetime) -> list[CampaignDiff]:
    """Campaigns whose inputs differ between `base_rev` and the working tree, planned both ways."""
    then_files, now_files = files_at(head.root, base_rev), files_now(head.root)
    with tempfile.TemporaryDirectory(prefix="nudge-diff-") as folder:
        base = _base_workspace(then_files, head, Path(folder))
        return _compare(conn, base, head, then_files, now_files, at)


def _compare(
    conn: Connection,
    base: Workspace,
    head: Workspace,
    then_files: dict[str, bytes],
    now_files: dict[str, bytes],
    at: datetime,
) -> list[CampaignDiff]:
    results = []
    for name in sorted(set(base.campaigns) | set(head.campaigns)):
        if name not in base.campaigns:
            entry = CampaignDiff(name, "added")
        elif name not in head.campaigns:
            entry = CampaignDiff(name, "removed")
        else:
            before, after = _inputs(base, name, then_files), _inputs(head, name, now_files)
            differ = [
                _label(head, name, k) for k in sorted(before.keys() | after.keys()) if before.get(k) != after.get(k)
            ]
            if not differ:
                continue
            entry = CampaignDiff(name, "changed", because=differ)
        was: set[str] = set()
        now: set[str] = set()
        if name in base.campaigns:
            entry.base, was = _plan(conn, base, name, at)
        if name in head.campaigns:
            entry.head, now = _plan(conn, head, name, at)
        entry.added, entry.removed = sorted(now - was), sorted(was - now)
        results.append(entry)
    return results
