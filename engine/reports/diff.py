"""`nudge diff`: what a change to the rules does to the audiences, for code review.

For every campaign whose rule file, segments or templates differ between a git revision and
the working tree, both versions are planned at the same instant against the same store: matched
and targeted at each, and who is added and removed. Nothing is written."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from engine.audience.planner import Planner
from engine.core.errors import Problem, UserInputError
from engine.rules.conditions import ConditionKind, walk
from engine.workspace.loader import Workspace, load_workspace

SAMPLE_IDS = 10
TRACKED = ("config.yaml", "rules", "templates")


@dataclass
class CampaignDiff:
    campaign: str
    change: str  # changed | added | removed
    base: dict[str, int] = field(default_factory=lambda: {"matched": 0, "targeted": 0})
    head: dict[str, int] = field(default_factory=lambda: {"matched": 0, "targeted": 0})
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "change": self.change,
            "base": self.base,
            "head": self.head,
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


def _inputs(workspace: Workspace, name: str, files: dict[str, bytes]) -> dict[str, bytes | None]:
    """Every file that decides what a campaign does: its rule, segments if used, its templates."""
    loaded = workspace.campaigns[name]
    rule = Path(loaded.path).relative_to(workspace.root).as_posix()
    used: dict[str, bytes | None] = {rule: files.get(rule)}
    if any(node.kind is ConditionKind.SEGMENT for node, _ in walk(loaded.campaign.audience)):
        used["rules/segments.yaml"] = files.get("rules/segments.yaml")
    templates = [p for p in files if p.startswith("templates/")]
    if loaded.campaign.sends_email:  # layouts and includes may reach any template: all of them count
        used.update({p: files.get(p) for p in templates})
    used["config.yaml"] = files.get("config.yaml")
    return used


def _plan(conn: Connection, workspace: Workspace, name: str, at: datetime) -> tuple[dict[str, int], set[str]]:
    planner = Planner(conn=conn, config=workspace.config, segments=workspace.segments, at=at)
    plan = planner.plan(workspace.campaigns[name].campaign)
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
            if before == after:
                continue
            entry = CampaignDiff(name, "changed")
        was: set[str] = set()
        now: set[str] = set()
        if name in base.campaigns:
            entry.base, was = _plan(conn, base, name, at)
        if name in head.campaigns:
            entry.head, now = _plan(conn, head, name, at)
        entry.added, entry.removed = sorted(now - was), sorted(was - now)
        results.append(entry)
    return results
