"""A campaign's actions rendered for one customer — the one function the dry run, the preview,
a test send and delivery all use, so what a marketer previews is what the customer gets."""

from __future__ import annotations

import weakref
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from engine.messages.template_checks import globals_read
from engine.messages.templates import render_file, render_string
from engine.messages.textify import html_to_text
from engine.rules.campaign import Campaign, EmailAction, TaskAction

HTML_SUFFIXES = (".html", ".htm", ".html.j2", ".htm.j2")


@dataclass(frozen=True)
class RenderedEmail:
    index: int
    sender: str
    subject: str
    body: str
    is_html: bool
    variant: str | None = None

    @property
    def text(self) -> str:
        return html_to_text(self.body) if self.is_html else self.body


@dataclass(frozen=True)
class RenderedTask:
    index: int
    queue: str
    title: str
    body: str | None
    due_in: timedelta | None


@dataclass
class RenderedActions:
    emails: list[RenderedEmail] = field(default_factory=list)
    tasks: list[RenderedTask] = field(default_factory=list)


def render_actions(
    env: SandboxedEnvironment,
    campaign: Campaign,
    context: Mapping[str, Any],
    *,
    default_sender: str,
    applies: Collection[int] | None = None,
    variant: str | None = None,
) -> RenderedActions:
    """Render every email and task of `campaign` that applies (all when `applies` is None).

    Raises RenderError for the first template that fails for this customer."""
    rendered = RenderedActions()
    for index, action in enumerate(campaign.actions):
        if applies is not None and index not in applies:
            continue
        if isinstance(action, EmailAction):
            template, subject, sender = action.email.content(variant)
            rendered.emails.append(
                RenderedEmail(
                    index=index,
                    sender=sender or default_sender,
                    subject=render_string(env, subject, context),
                    body=render_file(env, template, context),
                    is_html=template.endswith(HTML_SUFFIXES),
                    variant=variant,
                )
            )
        elif isinstance(action, TaskAction):
            task = action.task
            rendered.tasks.append(
                RenderedTask(
                    index=index,
                    queue=task.queue,
                    title=render_string(env, task.title, context).strip(),
                    body=render_string(env, task.body, context) if task.body else None,
                    due_in=task.due_in,
                )
            )
    return rendered


_READS: weakref.WeakKeyDictionary[Any, dict[str, frozenset[str] | None]] = weakref.WeakKeyDictionary()


def template_sources(campaign: Campaign) -> tuple[list[str], list[str]]:
    """The template files and the inline templates (subjects, task titles) of a campaign's actions."""
    files, inline = [], []
    for action in campaign.actions:
        if isinstance(action, EmailAction):
            arms: list[str | None] = [v.name for v in action.email.variants or []] or [None]
            for arm in arms:
                template, subject, _ = action.email.content(arm)
                files.append(template)
                inline.append(subject)
        elif isinstance(action, TaskAction):
            inline += [action.task.title, action.task.body or ""]
    return files, inline


def reads(env: SandboxedEnvironment, campaign: Campaign, name: str) -> bool:
    """Does any template of this campaign read the context name `name` (e.g. `last`)? True when in
    doubt. Remembered per environment: a reload of the rules brings a new one."""
    known = _READS.setdefault(env, {})
    if campaign.campaign not in known:
        known[campaign.campaign] = globals_read(env, *template_sources(campaign))
    found = known[campaign.campaign]
    return found is None or name in found


def preview_coupons(campaign: Campaign, at: datetime) -> dict[str, dict[str, Any]]:
    """Coupon stand-ins for previews: clearly not real codes, nothing stored."""
    return {
        spec.name: {
            "code": f"{spec.prefix or 'PREVIEW'}-PREVIEW",
            "percent_off": spec.percent_off,
            "amount_off": spec.amount_off,
            "expires_at": at + spec.valid_for,
            "name": spec.name,
        }
        for spec in campaign.template_coupons
    }
