"""`nudge validate`: everything `load_workspace` checks, plus every template file's syntax."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import sqlalchemy as sa

from engine.audience.catalog import build_catalog
from engine.core.errors import Problem, UserInputError
from engine.messages.templates import TemplateOutside, make_environment, resolve_inside
from engine.store import Store
from engine.store.tables import customer_metrics
from engine.workspace.loader import Workspace, load_workspace
from engine.workspace.render_check import render_problems
from engine.workspace.store_checks import store_warnings


def _template_syntax(templates_dir: Path) -> list[Problem]:
    """Every template file parses (including layouts that rules only reach through extends)."""
    env = make_environment(templates_dir)
    problems = []
    if not templates_dir.is_dir():
        return [Problem(str(templates_dir), None, None, "no templates/ folder in this workspace")]
    for file in sorted(templates_dir.rglob("*")):
        if file.name.startswith("."):
            continue
        try:
            real = resolve_inside(templates_dir, file.relative_to(templates_dir).as_posix())
        except TemplateOutside as exc:
            problems.append(Problem(str(file), None, None, exc.message or "leads outside templates/"))
            continue
        if not real.is_file():
            continue
        try:
            env.parse(real.read_text(encoding="utf-8"), file.name, str(file))
        except jinja2.TemplateSyntaxError as exc:
            problems.append(Problem(str(file), exc.lineno, None, f"template syntax error: {exc.message}"))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(file), None, None, f"cannot read template: {exc}"))
    return problems


@dataclass
class Validation:
    workspace: Workspace
    warnings: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # facts worth a look: each text's encoding and segments


def _against_store(workspace: Workspace, store: Store | None) -> tuple[list[Problem], list[Problem], list[Problem]]:
    """(errors, warnings, notes): one render per action, and the rules compared with the store's catalog."""
    if store is None:
        return render_problems(workspace, None)
    with store.engine.connect() as conn:
        errors, rendered, notes = render_problems(workspace, conn)
        filled = conn.execute(sa.select(sa.func.count()).select_from(customer_metrics)).scalar_one() > 0
        warnings = rendered + store_warnings(workspace, build_catalog(conn), filled)
        conn.rollback()
    return errors, warnings, notes


def validate_workspace(root: Path, open_store: Callable[[Workspace], Store | None] | None = None) -> Validation:
    """Load and check a whole workspace; raise UserInputError listing every error found.

    With `open_store`, each campaign is also rendered once for a sample customer (from the store
    when it has one), and the rules are compared with what the store holds (warnings)."""
    problems: list[Problem] = []
    workspace = None
    try:
        workspace = load_workspace(root)
    except UserInputError as exc:
        problems += exc.problems
    problems += [p for p in _template_syntax(root / "templates") if p not in problems]
    warnings: list[Problem] = []
    notes: list[Problem] = []
    if workspace is not None and not problems and open_store is not None:
        errors, found, notes = _against_store(workspace, open_store(workspace))
        problems += errors
        warnings = found + warnings
    if problems:
        raise UserInputError(problems + warnings)
    assert workspace is not None
    return Validation(workspace, warnings, notes)
