"""Sandboxed Jinja: one environment for templates/ and inline subjects, undefined names are errors."""

from __future__ import annotations

import glob
import os
import re
import traceback
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from engine.core.errors import RenderError
from engine.core.locales import template_names
from engine.messages.formatting import DEFAULT_SETTINGS, FILTERS, RenderSettings, finalize

# Bounds a template cannot pass: Jinja's sandbox blocks unsafe attributes but not a string or
# list multiplied into gigabytes, nor a huge power.
MAX_OUTPUT = 2_000_000  # characters one rendered template may produce
MAX_SEQUENCE = 100_000  # length of a string or list built by `*`
MAX_EXPONENT = 1_000
# Brackets and blocks inside one another: Jinja parses and compiles them recursively, and past
# about 70 levels that is a RecursionError. Counted on the tokens (no recursion) before parsing.
MAX_NESTING = 30
MAX_LOOPS = 16  # `for` inside `for`: each is a Python loop, and Python allows 20 nested blocks
_BLOCKS = frozenset({"if", "for", "macro", "call", "filter", "block", "with", "autoescape", "trans", "set"})
# A template failing for one customer (a type error on their data, a bound) is that message's
# failure, never a crash of the run.
RENDER_FAILURES = (
    jinja2.TemplateError,
    ArithmeticError,
    TypeError,
    ValueError,
    LookupError,
    AttributeError,
    MemoryError,
    RecursionError,
)


class NudgeEnvironment(SandboxedEnvironment):
    """Sandboxed and bounded; keeps compiled inline templates (subjects, task titles): compiling
    one costs far more than rendering it, and a campaign renders the same subject for everyone."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, *args: Any, settings: RenderSettings = DEFAULT_SETTINGS, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.inline_cache: dict[str, jinja2.Template] = {}
        self.settings = settings
        # (template, locale) → the file that locale reads, until a file is added to or removed
        # from the folder (its mtime changes): one stat per message instead of one per candidate.
        self.localized_cache: dict[tuple[str, str | None], tuple[int, str]] = {}

    def localized_name(self, name: str, locale: str | None) -> str:
        """The most specific of `name`'s locale variants that exists (`x.zh-CN.html.j2`,
        `x.zh.html.j2`, …, `name`), through the one locale resolver."""
        loader = self.loader
        if not isinstance(loader, InsideLoader):
            return name
        try:
            stamp = (loader.templates_dir / name).parent.stat().st_mtime_ns
        except OSError:
            return name
        known = self.localized_cache.get((name, locale))
        if known is not None and known[0] == stamp:
            return known[1]
        found = next(
            (c for c in template_names(name, locale, self.settings.default_locale) if _exists(loader, c)), name
        )
        self.localized_cache[(name, locale)] = (stamp, found)
        return found

    def _parse(self, source: str, name: str | None, filename: str | None) -> Any:
        _check_nesting(self, source, name, filename)
        return super()._parse(source, name, filename)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if (
                    isinstance(sequence, (str, list, tuple))
                    and isinstance(times, int)
                    and len(sequence) * times > MAX_SEQUENCE
                ):
                    raise SecurityError(f"a value repeated to more than {MAX_SEQUENCE:,} items")
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"an exponent above {MAX_EXPONENT}")
        return super().call_binop(context, operator, left, right)


def _check_nesting(env: jinja2.Environment, source: str, name: str | None, filename: str | None) -> None:
    """A TemplateSyntaxError at the line where nesting passes MAX_NESTING (or loops MAX_LOOPS)."""
    depth, tokens = 0, list(env._tokenize(source, name, filename))
    opened: list[str] = []  # the block tags open here, innermost last
    for index, token in enumerate(tokens):
        if token.type in ("lparen", "lbracket", "lbrace"):
            depth += 1
        elif token.type in ("rparen", "rbracket", "rbrace"):
            depth -= 1
        elif token.type == "name" and index and tokens[index - 1].type == "block_begin":
            if token.value.startswith("end"):
                depth -= 1
                if opened:
                    opened.pop()
            elif token.value in _BLOCKS and not _assigns(tokens, index):
                depth += 1
                opened.append(token.value)
        if depth > MAX_NESTING or opened.count("for") > MAX_LOOPS:
            what = f"{MAX_LOOPS} loops" if opened.count("for") > MAX_LOOPS else f"{MAX_NESTING} levels"
            raise jinja2.TemplateSyntaxError(f"nested more than {what} deep", token.lineno, name, filename)


def _assigns(tokens: list[Any], index: int) -> bool:
    """`{% set x = … %}` opens no block (`{% set x %}…{% endset %}` does)."""
    if tokens[index].value != "set":
        return False
    for token in tokens[index + 1 :]:
        if token.type == "block_end":
            return False
        if token.type == "assign":
            return True
    return False


# A locale tag between a template's stem and its suffixes: `welcome.zh-CN.html.j2`.
_TAG = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")


def locale_variants(env: jinja2.Environment, name: str) -> dict[str, str]:
    """Locale tag → file of each locale variant of template `name` in templates/
    (`{"zh-CN": "welcome.zh-CN.html.j2"}` for `welcome.html.j2`)."""
    loader = env.loader
    folder, slash, base = name.rpartition("/")
    stem, dot, suffix = base.partition(".")
    if not isinstance(loader, InsideLoader) or not dot:
        return {}
    try:
        siblings = sorted(p.name for p in (loader.templates_dir / folder).glob(f"{glob.escape(stem)}.*.{suffix}"))
    except OSError:
        return {}
    found = {}
    for sibling in siblings:
        tag = sibling[len(stem) + 1 : -len(suffix) - 1]
        if _TAG.fullmatch(tag):
            found[tag] = f"{folder}{slash}{sibling}"
    return found


def _exists(loader: InsideLoader, name: str) -> bool:
    try:
        return resolve_inside(loader.templates_dir, name).is_file()
    except TemplateOutside:
        return False


class TemplateOutside(jinja2.TemplateNotFound):
    """A template name whose file, once symlinks are followed, is not inside templates/."""

    def __init__(self, name: str, target: str):
        super().__init__(name, f"template {name!r} leads outside templates/ (it resolves to {target})")


def resolve_inside(templates_dir: Path, name: str) -> Path:
    """The real path of template `name`, refusing one that leaves `templates_dir` after every
    symlink is followed: a link to /proc/self/environ or ../config.yaml must never be rendered
    into a message. The file need not exist (the caller says "not found")."""
    root = os.path.realpath(templates_dir)
    real = os.path.realpath(os.path.join(root, *split_template_path(name)))
    if os.path.commonpath([root, real]) != root:
        raise TemplateOutside(name, real)
    return Path(real)


class InsideLoader(jinja2.BaseLoader):
    """Loads templates from one folder, by real path, never from outside it (see resolve_inside)."""

    def __init__(self, templates_dir: Path):
        self.templates_dir = Path(templates_dir)

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        path = resolve_inside(self.templates_dir, template)
        try:
            text = path.read_text(encoding="utf-8")
            mtime = path.stat().st_mtime
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise jinja2.TemplateNotFound(template, f"{template!r} not found in {self.templates_dir}") from None

        def uptodate() -> bool:
            try:
                return path.stat().st_mtime == mtime
            except OSError:
                return False

        # The name as written (not the link's target) so errors and tracebacks point at it.
        return text, os.path.normpath(self.templates_dir / template), uptodate


def make_environment(templates_dir: Path, settings: RenderSettings = DEFAULT_SETTINGS) -> SandboxedEnvironment:
    """The one Jinja environment: sandboxed, strict about undefined names, HTML (and MJML)
    autoescaped, loading only files that are inside templates/ after symlinks are resolved, with
    the locale-aware filters (money, date, number, full_name) and `settings` from config."""
    env = NudgeEnvironment(
        loader=InsideLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml", "mjml", "html.j2", "htm.j2", "mjml.j2"),
            default_for_string=False,
        ),
        keep_trailing_newline=True,
        finalize=finalize,
        settings=settings,
    )
    env.filters.update(FILTERS)
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "default": _json_value}
    return env


def _json_value(value: Any) -> Any:
    """What `tojson` (webhook bodies) writes for a value json.dumps cannot: an undefined name fails
    naming it, as everywhere else (json.dumps alone says "StrictUndefined is not JSON
    serializable"), and a time is ISO 8601 text."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"tojson cannot write a {type(value).__name__}")


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
        return _bounded(_compiled(env, text).render(context))
    except RENDER_FAILURES as exc:
        raise RenderError(_reason(exc)) from None


def render_file(env: SandboxedEnvironment, name: str, context: Mapping[str, Any]) -> str:
    """Render a template file; raise RenderError naming the template and line when possible."""
    try:
        return _bounded(env.get_template(name).render(context))
    except RENDER_FAILURES as exc:
        lineno = getattr(exc, "lineno", None) or _template_line(exc, name)
        where = f"{name}:{lineno}" if lineno else name
        raise RenderError(f"{where}: {_reason(exc)}") from None


def _template_line(exc: BaseException, name: str) -> int | None:
    """The template line a runtime error came from: Jinja rewrites tracebacks to show it."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(name)]
    return lines[-1] if lines else None


def _bounded(text: str) -> str:
    if len(text) > MAX_OUTPUT:
        raise SecurityError(f"the rendered text is longer than {MAX_OUTPUT:,} characters")
    return text


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "the template needs more memory than is available"
    if isinstance(exc, RecursionError):
        return "the template recurses too deeply"
    if isinstance(exc, jinja2.TemplateError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
