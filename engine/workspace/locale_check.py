"""What validate renders an action in, locale by locale, and the warnings of one such render: a
subject not translated for a locale the shop writes in, and an email Gmail would clip."""

from __future__ import annotations

from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from engine.core.locales import DEFAULT_KEY, chain
from engine.messages.actions import RenderedEmail
from engine.messages.email_html import CLIP_BYTES
from engine.messages.templates import locale_variants
from engine.rules.actions import EmailAction, SmsAction, TaskAction
from engine.rules.config import Config


def _keys(source: Any) -> list[str]:
    return [key for key in source if key != DEFAULT_KEY] if isinstance(source, dict) else []


def _subjects(action: EmailAction) -> list[Any]:
    spec = action.email
    return [v.subject for v in spec.variants] if spec.variants else [spec.subject]


def written_locales(env: SandboxedEnvironment, config: Config, action: Any) -> list[str]:
    """The locales an action is written in beyond the default: the keys of its texts by locale,
    its templates' locale variants (`x.zh-CN.html.j2`) and, for an email, config's `supported`."""
    found: list[str] = []
    if isinstance(action, EmailAction):
        spec = action.email
        templates = [v.template for v in spec.variants] if spec.variants else [spec.template or ""]
        found += [tag for name in templates for tag in locale_variants(env, name)]
        found += [key for subject in _subjects(action) for key in _keys(subject)] + _keys(spec.preheader)
        found += config.locales.supported
    elif isinstance(action, SmsAction):
        found += _keys(action.sms.text)
    elif isinstance(action, TaskAction):
        found += _keys(action.task.title)
    default = config.locales.default
    unique = {tag.lower(): tag for tag in reversed(found) if tag.lower() != default.lower()}
    return [default, *sorted(unique.values(), key=str.lower)] if unique else []


def _translated(source: Any, locale: str, default: str) -> bool:
    """Does a text by locale have an entry for this locale's own language (not the default's)?"""
    if not isinstance(source, dict):
        return False
    own = [tag.lower() for tag in chain(locale, default) if tag not in chain(default, default)]
    return any(key.lower() in own for key in source)


def email_warnings(
    config: Config, action: EmailAction, variant: str | None, locale: str | None, email: RenderedEmail
) -> list[str]:
    """A subject left untranslated for a locale that has its own text (or is supported), and an
    email over Gmail's clipping size."""
    found = []
    default = config.locales.default
    subject = action.email.content(variant)[1]
    foreign = locale is not None and locale.split("-")[0].lower() != default.split("-")[0].lower()
    if foreign and not _translated(subject, str(locale), default):
        found.append(
            f"the subject has no {locale} translation: customers of {locale} get "
            f"{'the default subject' if isinstance(subject, dict) else 'the subject as written'}"
            + (f" with {email.template}" if email.template and email.template not in _names(action, variant) else "")
        )
    size = len(email.body.encode("utf-8"))
    if size > CLIP_BYTES:
        found.append(
            f"the email is {size / 1024:.0f} KB: Gmail clips messages over about {CLIP_BYTES // 1024} KB "
            "(the end, with the unsubscribe link, hidden behind a link)"
        )
    return found


def _names(action: EmailAction, variant: str | None) -> set[str]:
    return {action.email.content(variant)[0]}
