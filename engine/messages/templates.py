"""Sandboxed Jinja: one environment for templates/ and inline subjects, undefined names are errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

from engine.core.errors import Problem
from engine.core.fields import CUSTOMER_FIELDS
from engine.core.errors import RenderError

CONTEXT_NAMES = frozenset({"customer", "campaign", "coupons", "at", "last", "unsubscribe_url"})
CUSTOMER_KEYS = frozenset(CUSTOMER_FIELDS) | {"attributes"}
CAMPAIGN_KEYS = frozenset({"name", "description", "priority"})




class NudgeEnvironment(SandboxedEnvironment):
    """Sandboxed; keeps compiled inline templates (subjects, task titles): compiling one costs
    far more than rendering it, and a campaign renders the same subject for every customer."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.inline_cache: dict[str, jinja2.Template] = {}


def make_environment(templates_dir: Path) -> SandboxedEnvironment:
    """The one Jinja environment: sandboxed, strict about undefined names, HTML autoescaped."""
    return NudgeEnvironment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml", "html.j2", "htm.j2"),
                                            default_for_string=False),
        keep_trailing_newline=True,
    )


@dataclass(frozen=True)
class TemplateSource:
    """Where a template's text comes from, for error messages."""

    path: str
    line_offset: int = 0  # inline templates: the line of the YAML value
    col: int | None = None


def _names_used(tree: nodes.Template) -> Iterable[tuple[str, str | None, int]]:
    """(name, first attribute or None, line) for every global name read by the template."""
    assigned: set[str] = set()
    for node in tree.find_all((nodes.Assign, nodes.For, nodes.Macro, nodes.With)):
        targets = []
        if isinstance(node, (nodes.Assign, nodes.For)):
            targets = list(node.target.find_all(nodes.Name)) if not isinstance(node.target, nodes.Name) else [node.target]
        elif isinstance(node, nodes.Macro):
            targets = list(node.args)
        elif isinstance(node, nodes.With):
            targets = list(node.targets)
        assigned.update(t.name for t in targets if isinstance(t, nodes.Name))
    attr_of: dict[int, str] = {}
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name):
            attr_of[id(node.node)] = node.attr
    for node in tree.find_all(nodes.Getitem):
        if isinstance(node.node, nodes.Name) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            attr_of[id(node.node)] = node.arg.value
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name not in assigned:
            yield node.name, attr_of.get(id(node)), node.lineno


def check_names(tree: nodes.Template, source: TemplateSource, coupon_names: Iterable[str]) -> list[Problem]:
    """Report names a template reads that the render context will never have."""
    problems = []
    coupons = set(coupon_names)
    for name, attr, line in _names_used(tree):
        where = (source.path, source.line_offset + line if source.line_offset else line, source.col)
        message = None
        if name not in CONTEXT_NAMES:
            message = (f"undefined template variable {name!r}: available are "
                       + ", ".join(sorted(CONTEXT_NAMES)))
        elif name == "customer" and attr is not None and attr not in CUSTOMER_KEYS:
            message = f"undefined template variable 'customer.{attr}': custom fields are customer.attributes.{attr}"
        elif name == "coupons" and attr is not None and attr not in coupons:
            have = ", ".join(sorted(coupons)) or "none"
            message = f"undefined template variable 'coupons.{attr}': this campaign's coupons are {have}"
        elif name == "campaign" and attr is not None and attr not in CAMPAIGN_KEYS:
            message = f"undefined template variable 'campaign.{attr}': available are {', '.join(sorted(CAMPAIGN_KEYS))}"
        if message:
            problems.append(Problem(where[0], where[1], where[2] if source.line_offset else None, message))
    return problems


def check_template_file(env: SandboxedEnvironment, name: str, templates_dir: Path,
                        coupon_names: Iterable[str]) -> list[Problem]:
    """Parse a template file and check the names it uses; problems carry the template's path."""
    file = templates_dir / name
    shown = str(file)
    if not file.is_file():
        return [Problem(shown, None, None, "template not found")]
    try:
        text = file.read_text(encoding="utf-8")
        tree = env.parse(text, name, str(file))
    except jinja2.TemplateSyntaxError as exc:
        return [Problem(shown, exc.lineno, None, f"template syntax error: {exc.message}")]
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(shown, None, None, f"cannot read template: {exc}")]
    return check_names(tree, TemplateSource(shown), coupon_names)


def check_inline(env: SandboxedEnvironment, text: str, source: TemplateSource,
                 coupon_names: Iterable[str]) -> list[Problem]:
    """Check an inline template (a subject, a task title) written in a rule file."""
    try:
        tree = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return [Problem(source.path, source.line_offset, source.col, f"template syntax error: {exc.message}")]
    lined = TemplateSource(source.path, source.line_offset - 1 if source.line_offset else 0, source.col)
    return check_names(tree, lined, coupon_names)


class LastEvents(dict):
    """``last.TYPE``: the most recent event of a type; falsy (for ``{% if %}``) when there is none,
    and an error that says so when a template reads through it."""

    def __missing__(self, key: str) -> jinja2.Undefined:
        return jinja2.Undefined(hint=f"this customer has no {key} event before this run "
                                     f"(guard it with {{% if last.{key} %}})")


def _compiled(env: SandboxedEnvironment, text: str) -> jinja2.Template:
    cache = getattr(env, "inline_cache", None)
    if cache is None:
        return env.from_string(text)
    template = cache.get(text)
    if template is None:
        template = cache[text] = env.from_string(text)
    return template


def render_string(env: SandboxedEnvironment, text: str, context: Mapping[str, Any]) -> str:
    """Render an inline template; raise RenderError with a readable reason."""
    try:
        return _compiled(env, text).render(context)
    except jinja2.TemplateError as exc:
        raise RenderError(str(exc)) from None


def render_file(env: SandboxedEnvironment, name: str, context: Mapping[str, Any]) -> str:
    """Render a template file; raise RenderError naming the template and line when possible."""
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        where = f"{name}:{lineno}" if lineno else name
        raise RenderError(f"{where}: {exc}") from None
