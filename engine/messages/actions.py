"""A campaign's actions rendered for one customer — the one function the dry run, the preview,
a test send and delivery all use, so what a marketer previews is what the customer gets."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from engine.core.errors import RenderError
from engine.core.locales import pick
from engine.messages.sms import MAX_SEGMENTS, measure, with_opt_out
from engine.messages.template_checks import globals_read
from engine.messages.templates import render_file, render_string
from engine.messages.textify import html_to_text
from engine.messages.webhook import render_body
from engine.rules.actions import EmailAction, SmsAction, TaskAction, WebhookAction
from engine.rules.campaign import Campaign

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


@dataclass(frozen=True)
class RenderedSms:
    index: int
    text: str  # with the opt-out hint, as the customer will read it
    encoding: str
    segments: int


@dataclass(frozen=True)
class RenderedWebhook:
    index: int
    url_env: str
    body: str  # JSON text, checked to parse


@dataclass
class RenderedActions:
    emails: list[RenderedEmail] = field(default_factory=list)
    sms: list[RenderedSms] = field(default_factory=list)
    webhooks: list[RenderedWebhook] = field(default_factory=list)
    tasks: list[RenderedTask] = field(default_factory=list)


@dataclass(frozen=True)
class _Render:
    """What every renderer needs for one customer."""

    env: SandboxedEnvironment
    context: Mapping[str, Any]
    default_sender: str
    variant: str | None
    opt_out: bool
    default_locale: str

    @property
    def locale(self) -> str | None:
        customer = self.context.get("customer")
        return customer.get("locale") if isinstance(customer, Mapping) else None


def _email(job: _Render, index: int, action: Any, out: RenderedActions) -> None:
    template, subject, sender = action.email.content(job.variant)
    out.emails.append(
        RenderedEmail(
            index=index,
            sender=sender or job.default_sender,
            subject=render_string(job.env, subject, job.context),
            body=render_file(job.env, template, job.context),
            is_html=template.endswith(HTML_SUFFIXES),
            variant=job.variant,
        )
    )


def _sms(job: _Render, index: int, action: Any, out: RenderedActions) -> None:
    source = action.sms.text
    template = pick(source, job.locale, job.default_locale) if isinstance(source, dict) else source
    text = render_string(job.env, template, job.context).strip()
    if job.opt_out:
        text = with_opt_out(text, job.locale or job.default_locale)
    size = measure(text)
    if size.segments > MAX_SEGMENTS:
        raise RenderError(f"text message is {size.segments} segments long ({size.encoding}): at most {MAX_SEGMENTS}")
    out.sms.append(RenderedSms(index=index, text=text, encoding=size.encoding, segments=size.segments))


def _webhook(job: _Render, index: int, action: Any, out: RenderedActions) -> None:
    body = render_body(job.env, action.webhook.body, job.context)
    out.webhooks.append(RenderedWebhook(index=index, url_env=action.webhook.url_env, body=body))


def _task(job: _Render, index: int, action: Any, out: RenderedActions) -> None:
    task = action.task
    out.tasks.append(
        RenderedTask(
            index=index,
            queue=task.queue,
            title=render_string(job.env, task.title, job.context).strip(),
            body=render_string(job.env, task.body, job.context) if task.body else None,
            due_in=task.due_in,
        )
    )


# One renderer per kind of action; coupons are issued at planning, not rendered.
RENDERERS: dict[type, Callable[[_Render, int, Any, RenderedActions], None]] = {
    EmailAction: _email,
    SmsAction: _sms,
    WebhookAction: _webhook,
    TaskAction: _task,
}


def render_actions(
    env: SandboxedEnvironment,
    campaign: Campaign,
    context: Mapping[str, Any],
    *,
    default_sender: str,
    applies: Collection[int] | None = None,
    variant: str | None = None,
    opt_out: bool = True,
    default_locale: str = "en",
) -> RenderedActions:
    """Render every message and task of `campaign` that applies (all when `applies` is None).
    `opt_out`: end marketing texts with the opt-out hint (not for a required topic's).

    Raises RenderError for the first template that fails for this customer."""
    rendered = RenderedActions()
    job = _Render(env, context, default_sender, variant, opt_out, default_locale)
    for index, action in enumerate(campaign.actions):
        if applies is not None and index not in applies:
            continue
        renderer = RENDERERS.get(type(action))
        if renderer is not None:
            renderer(job, index, action, rendered)
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
        elif isinstance(action, SmsAction):
            source = action.sms.text
            inline += list(source.values()) if isinstance(source, dict) else [source]
        elif isinstance(action, WebhookAction):
            files.append(action.webhook.body)
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
