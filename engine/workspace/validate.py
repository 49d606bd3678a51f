"""`nudge validate`: everything `load_workspace` checks, plus every template file's syntax."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jinja2

from engine.core.errors import Problem, UserInputError
from engine.messages.templates import make_environment
from engine.store import Store
from engine.workspace.loader import Workspace, load_workspace
from engine.workspace.render_check import render_problems


def _template_syntax(templates_dir: Path) -> list[Problem]:
    """Every template file parses (including layouts that rules only reach through extends)."""
    env = make_environment(templates_dir)
    problems = []
    if not templates_dir.is_dir():
        return [Problem(str(templates_dir), None, None, "no templates/ folder in this workspace")]
    for file in sorted(templates_dir.rglob("*")):
        if not file.is_file() or file.name.startswith("."):
            continue
        try:
            env.parse(file.read_text(encoding="utf-8"), file.name, str(file))
        except jinja2.TemplateSyntaxError as exc:
            problems.append(Problem(str(file), exc.lineno, None, f"template syntax error: {exc.message}"))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(file), None, None, f"cannot read template: {exc}"))
    return problems


def validate_workspace(root: Path, open_store: Callable[[Workspace], Store | None] | None = None) -> Workspace:
    """Load and check a whole workspace; raise UserInputError listing every problem found.

    With `open_store`, each campaign is also rendered once for a sample customer (from the store
    when it has one)."""
    problems: list[Problem] = []
    workspace = None
    try:
        workspace = load_workspace(root)
    except UserInputError as exc:
        problems += exc.problems
    problems += [p for p in _template_syntax(root / "templates") if p not in problems]
    if workspace is not None and not problems and open_store is not None:
        store = open_store(workspace)
        if store is None:
            problems += render_problems(workspace, None)
        else:
            with store.engine.connect() as conn:
                problems += render_problems(workspace, conn)
                conn.rollback()
    if problems:
        raise UserInputError(problems)
    assert workspace is not None
    return workspace
