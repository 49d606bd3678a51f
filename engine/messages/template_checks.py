"""Static checks of templates at validate time: names a template reads that its render context
will never have (a misspelt variable, a coupon the campaign does not issue), with their lines."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

from engine.core.errors import Problem
from engine.core.fields import CUSTOMER_FIELDS
from engine.messages.recommend_checks import recommend_problems
from engine.messages.templates import TemplateOutside, resolve_inside

# `locale`: the customer's, else config's `locales.default`; `preheader`: an email's, or "".
CONTEXT_NAMES = frozenset(
    {
        "customer",
        "campaign",
        "coupons",
        "at",
        "last",
        "matched",
        "unsubscribe_url",
        "preferences_url",
        "locale",
        "preheader",
        "products",
        "recommend",
    }
)
CUSTOMER_KEYS = frozenset(CUSTOMER_FIELDS) | {"attributes"}
CAMPAIGN_KEYS = frozenset({"name", "description", "priority"})


@dataclass(frozen=True)
class TemplateSource:
    """Where a template's text comes from, for error messages."""

    path: str
    line_offset: int = 0  # inline templates: the line of the YAML value
    col: int | None = None


def _defined(tree: nodes.Template) -> set[str]:
    """Names the template gives itself: macros, and what `import … as m` and `from … import f` bind."""
    found = {m.name for m in tree.find_all(nodes.Macro)}
    found.update(i.target for i in tree.find_all(nodes.Import))
    for imported in tree.find_all(nodes.FromImport):
        found.update(n if isinstance(n, str) else n[1] for n in imported.names)
    return found


def _names_used(tree: nodes.Template) -> Iterable[tuple[str, str | None, int]]:
    """(name, first attribute or None, line) for every global name read by the template."""
    assigned: set[str] = _defined(tree)
    for statement in tree.find_all((nodes.Assign, nodes.For, nodes.Macro, nodes.With)):
        targets: list[nodes.Expr] = []
        if isinstance(statement, (nodes.Assign, nodes.For)):
            target = statement.target
            targets = list(target.find_all(nodes.Name)) if not isinstance(target, nodes.Name) else [target]
        elif isinstance(statement, nodes.Macro):
            targets = list(statement.args)
        elif isinstance(statement, nodes.With):
            targets = list(statement.targets)
        assigned.update(t.name for t in targets if isinstance(t, nodes.Name))
    attr_of: dict[int, str] = {}
    for getattr_node in tree.find_all(nodes.Getattr):
        if isinstance(getattr_node.node, nodes.Name):
            attr_of[id(getattr_node.node)] = getattr_node.attr
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name) and isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str):
            attr_of[id(item.node)] = item.arg.value
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in assigned:
            yield name.name, attr_of.get(id(name)), name.lineno


@dataclass(frozen=True)
class Names:
    """What one campaign's templates may read beyond the fixed context."""

    coupons: frozenset[str] = frozenset()
    matched: frozenset[str] = frozenset()
    ambiguous: frozenset[str] = frozenset()  # two audience leaves of one type, no `as`
    trigger: bool = False  # a triggered campaign: `trigger` is its triggering event


def _matched_problem(attr: str, names: Names) -> str | None:
    if attr in names.ambiguous:
        return (
            f"'matched.{attr}' is ambiguous: two event leaves of type {attr!r} in the audience; "
            f"give each an `as: NAME` and read matched.NAME"
        )
    if attr not in names.matched:
        have = ", ".join(sorted(names.matched)) or "none (the audience has no event leaf outside a `not`)"
        return f"undefined template variable 'matched.{attr}': this campaign's matched events are {have}"
    return None


def check_names(tree: nodes.Template, source: TemplateSource, names: Names) -> list[Problem]:
    """Report names a template reads that the render context will never have."""
    problems = []
    coupons = names.coupons
    for name, attr, line in _names_used(tree):
        where = (source.path, source.line_offset + line if source.line_offset else line, source.col)
        message = None
        available = CONTEXT_NAMES | ({"trigger"} if names.trigger else set())
        if name not in available:
            message = f"undefined template variable {name!r}: available are " + ", ".join(sorted(available))
            if name == "trigger":
                message += " (`trigger` is the triggering event of a campaign with `trigger:`)"
        elif name == "customer" and attr is not None and attr not in CUSTOMER_KEYS:
            message = f"undefined template variable 'customer.{attr}': custom fields are customer.attributes.{attr}"
        elif name == "coupons" and attr is not None and attr not in coupons:
            have = ", ".join(sorted(coupons)) or "none"
            message = f"undefined template variable 'coupons.{attr}': this campaign's coupons are {have}"
        elif name == "matched" and attr is not None:
            message = _matched_problem(attr, names)
        elif name == "campaign" and attr is not None and attr not in CAMPAIGN_KEYS:
            message = f"undefined template variable 'campaign.{attr}': available are {', '.join(sorted(CAMPAIGN_KEYS))}"
        if message:
            problems.append(Problem(where[0], where[1], where[2] if source.line_offset else None, message))
    for line, message in recommend_problems(tree):
        at_line = source.line_offset + line if source.line_offset else line
        problems.append(Problem(source.path, at_line, source.col if source.line_offset else None, message))
    return problems


def check_template_file(env: SandboxedEnvironment, name: str, templates_dir: Path, names: Names) -> list[Problem]:
    """Parse a template file and check the names it uses; problems carry the template's path."""
    file = templates_dir / name
    shown = str(file)
    try:
        real = resolve_inside(templates_dir, name)
    except TemplateOutside as exc:
        return [Problem(shown, None, None, exc.message or "leads outside templates/")]
    if not real.is_file():
        return [Problem(shown, None, None, "template not found")]
    try:
        text = real.read_text(encoding="utf-8")
        tree = env.parse(text, name, str(file))
    except jinja2.TemplateSyntaxError as exc:
        return [Problem(shown, exc.lineno, None, f"template syntax error: {exc.message}")]
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(shown, None, None, f"cannot read template: {exc}")]
    return check_names(tree, TemplateSource(shown), names)


def _trees(
    env: SandboxedEnvironment, files: Iterable[str], inline: Iterable[str]
) -> list[tuple[str | None, nodes.Template]] | None:
    """(template name, or None for inline text; parsed tree) of these templates and every one they
    reach through `extends`/`include`/`import`; None when that cannot be known (a template computed
    at run time, or one that does not parse)."""
    pending, seen = list(files), set()
    try:
        trees: list[tuple[str | None, nodes.Template]] = [(None, env.parse(text)) for text in inline]
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            assert env.loader is not None
            source, _, _ = env.loader.get_source(env, name)
            tree = env.parse(source)
            trees.append((name, tree))
            for ref in jinja2.meta.find_referenced_templates(tree):
                if ref is None:
                    return None
                pending.append(ref)
    except (jinja2.TemplateError, OSError):
        return None
    return trees


def globals_read(env: SandboxedEnvironment, files: Iterable[str], inline: Iterable[str]) -> frozenset[str] | None:
    """Every global name these templates read, following `extends`/`include`/`import`; None when
    that cannot be known."""
    trees = _trees(env, files, inline)
    if trees is None:
        return None
    return frozenset(name for _, tree in trees for name, _, _ in _names_used(tree))


def attributes_read(
    env: SandboxedEnvironment, files: Iterable[str], inline: Iterable[str], variable: str
) -> list[tuple[str, str | None, int]]:
    """(attribute, template name or None for inline text, line) for each `VARIABLE.ATTRIBUTE` the
    templates read — `last.purchase` gives ("purchase", "lapsed_buyers.html.j2", 3)."""
    return [
        (attr, name, line)
        for name, tree in _trees(env, files, inline) or []
        for used, attr, line in _names_used(tree)
        if used == variable and attr is not None
    ]


def check_inline(env: SandboxedEnvironment, text: str, source: TemplateSource, names: Names) -> list[Problem]:
    """Check an inline template (a subject, a task title) written in a rule file."""
    try:
        tree = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return [Problem(source.path, source.line_offset, source.col, f"template syntax error: {exc.message}")]
    lined = TemplateSource(source.path, source.line_offset - 1 if source.line_offset else 0, source.col)
    return check_names(tree, lined, names)
