"""The templates a campaign names, checked when its file loads: every file exists inside templates/
and renders with the names its context will have, every inline template (subjects, texts, task
titles) too — each problem at the YAML position that names the template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.core.errors import Problem
from engine.core.fields import TEMPLATE_NAME_MAX
from engine.messages.template_checks import Names, TemplateSource, check_inline, check_template_file
from engine.messages.templates import locale_variants, make_environment
from engine.rules.actions import CouponAction, EmailAction, SmsAction, TaskAction, WebhookAction
from engine.rules.campaign import Campaign
from engine.rules.conditions import matched_names
from engine.rules.yamlsource import Located


def action_groups(campaign: Campaign) -> list[tuple[list[Any], tuple]]:
    """The campaign's action lists with their YAML path: its actions, or each journey step's."""
    if campaign.steps is None:
        return [(campaign.actions, ("actions",))]
    return [(step.actions, ("steps", i, "actions")) for i, step in enumerate(campaign.steps)]


def template_problems(
    campaign: Campaign, located: Located, templates_dir: Path, segments: dict[str, Any]
) -> list[Problem]:
    env = make_environment(templates_dir)
    leaves, ambiguous = matched_names(campaign.audience, segments)
    problems: list[Problem] = []

    def inline(text: str | dict[str, str], loc: tuple, names: Names) -> None:
        # A text by locale: each entry, at its own key.
        for key, one in text.items() if isinstance(text, dict) else [(None, text)]:
            line, col = located.position(loc + ((key,) if key else ()))
            problems.extend(check_inline(env, one, TemplateSource(located.path, line, col), names))

    coupons: frozenset[str] = frozenset()
    for group, (actions, base) in enumerate(action_groups(campaign)):
        # A journey step's templates also see the coupons of the steps before it.
        coupons |= {a.coupon.name for a in actions if isinstance(a, CouponAction)}
        # A journey's later steps target "due for this step", so no audience event is matched there.
        names = (
            Names(coupons, frozenset(leaves), frozenset(ambiguous), trigger=campaign.trigger is not None)
            if group == 0
            else Names(coupons)
        )
        for i, action in enumerate(actions):
            if isinstance(action, EmailAction):
                for name, subject, loc in _email_contents(action, base + (i,)):
                    for each in [name, *locale_variants(env, name).values()]:
                        problems.extend(
                            _file_problems(env, each, templates_dir, names, located, loc, campaign.campaign)
                        )
                    inline(subject, loc + ("subject",), names)
                if action.email.preheader:
                    inline(action.email.preheader, base + (i, "email", "preheader"), names)
            elif isinstance(action, SmsAction):
                inline(action.sms.text, base + (i, "sms", "text"), names)
            elif isinstance(action, WebhookAction):
                loc = base + (i, "webhook")
                body = action.webhook.body
                problems.extend(
                    _file_problems(env, body, templates_dir, names, located, loc, campaign.campaign, "body")
                )
            elif isinstance(action, TaskAction):
                inline(action.task.title, base + (i, "task", "title"), names)
                if action.task.body:
                    inline(action.task.body, base + (i, "task", "body"), names)
    return problems


def raw_template_problems(raw: dict[str, Any], located: Located, templates_dir: Path) -> list[Problem]:
    """Missing template files, read from the raw YAML of a file that did not validate."""
    problems = []
    steps = raw.get("steps")
    groups = [(raw.get("actions"), ("actions",))] + [
        (step.get("actions"), ("steps", k, "actions"))
        for k, step in enumerate(steps if isinstance(steps, list) else [])
        if isinstance(step, dict)
    ]
    for actions, base in groups:
        for i, action in enumerate(actions if isinstance(actions, list) else []):
            kind, key = (
                ("webhook", "body") if isinstance(action, dict) and "webhook" in action else ("email", "template")
            )
            spec = action.get(kind) if isinstance(action, dict) else None
            name = spec.get(key) if isinstance(spec, dict) else None
            inside = (
                isinstance(name, str)
                and 0 < len(name) <= TEMPLATE_NAME_MAX
                and not name.startswith("/")
                and ".." not in name
            )
            if inside and not (templates_dir / str(name)).is_file():
                line, col = located.position(base + (i, kind, key))
                problems.append(Problem(located.path, line, col, f"template {name!r} not found in {templates_dir}"))
    return problems


def _email_contents(action: EmailAction, at: tuple) -> list[tuple[str, str | dict[str, str], tuple]]:
    """(template, subject, YAML path) of an email, one per A/B variant when it tests any."""
    spec = action.email
    if spec.variants:
        return [(v.template, v.subject, at + ("email", "variants", k)) for k, v in enumerate(spec.variants)]
    assert spec.template is not None and spec.subject is not None
    return [(spec.template, spec.subject, at + ("email",))]


def _file_problems(
    env: Any,
    name: str,
    templates_dir: Path,
    names: Names,
    located: Located,
    loc: tuple,
    campaign: str,
    key: str = "template",
) -> list[Problem]:
    found = check_template_file(env, name, templates_dir, names)
    if found and found[0].message == "template not found":
        line, col = located.position(loc + (key,))
        return [Problem(located.path, line, col, f"template {name!r} not found in {templates_dir}")]
    if found and found[0].line is None and "leads outside templates/" in found[0].message:
        line, col = located.position(loc + (key,))
        return [Problem(located.path, line, col, found[0].message)]
    # The template may serve several campaigns: say which one it fails for, once per message.
    unique = {p.message: p for p in reversed(found)}
    return [
        Problem(p.path, p.line, p.col, f"{p.message} (campaign {campaign!r})") for p in found if unique[p.message] is p
    ]
