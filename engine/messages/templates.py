"""Sandboxed Jinja: one environment for templates/ and inline subjects, undefined names are errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from engine.core.errors import RenderError


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
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml", "html.j2", "htm.j2"), default_for_string=False
        ),
        keep_trailing_newline=True,
    )


class LastEvents(dict):
    """``last.TYPE``: the most recent event of a type; falsy (for ``{% if %}``) when there is none,
    and an error that says so when a template reads through it."""

    def __missing__(self, key: str) -> jinja2.Undefined:
        return jinja2.Undefined(
            hint=f"this customer has no {key} event before this run (guard it with {{% if last.{key} %}})"
        )


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
