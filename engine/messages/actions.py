"""A campaign's actions rendered for one customer — the one function the dry run, the preview,
a test send and delivery all use, so what a marketer previews is what the customer gets."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from engine.core.errors import RenderError
from engine.core.locales import pick
from engine.messages.email_html import render_email_body
from engine.messages.formatting import Money, RenderSettings, rendering_locale, settings_of
from engine.messages.sms import MAX_SEGMENTS, measure, with_opt_out
from engine.messages.template_checks import globals_read
from engine.messages.templates import locale_variants, render_string
from engine.messages.textify import html_to_text
from engine.messages.webhook import render_body
from engine.rules.actions import EmailAction, SmsAction, TaskAction, WebhookAction
from engine.rules.campaign import Campaign


@dataclass(frozen=True)
class RenderedEmail:
    index: int
    sender: str
    subject: str
    body: str
    is_html: bool
    variant: str | None = None
    template: str | None = None  # the file rendered: the locale's variant of the rule's, if any
    locale: str | None = None  # the locale it was rendered in

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

    def by_locale(self, source: str | dict[str, str]) -> str:
        """A text written once, or the customer's entry of one written by locale."""
        return pick(source, self.locale, self.default_locale) if isinstance(source, dict) else source


def _email(job: _Render, index: int, action: Any, out: RenderedActions) -> None:
    template, subject, sender = action.email.content(job.variant)
    preheader = action.email.preheader
    context = {
        **job.context,
        "preheader": render_string(job.env, job.by_locale(preheader), job.context).strip() if preheader else "",
    }
    body = render_email_body(job.env, template, context, job.locale)
    out.emails.append(
        RenderedEmail(
            index=index,
            sender=sender or job.default_sender,
            subject=render_string(job.env, job.by_locale(subject), job.context),
            body=body.body,
            is_html=body.is_html,
            variant=job.variant,
            template=body.template,
            locale=job.context["locale"],
        )
    )


def _sms(job: _Render, index: int, action: Any, out: RenderedActions) -> None:
    text = render_string(job.env, job.by_locale(action.sms.text), job.context).strip()
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
            title=render_string(job.env, job.by_locale(task.title), job.context).strip(),
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
    default_locale: str | None = None,
) -> RenderedActions:
    """Render every message and task of `campaign` that applies (all when `applies` is None).
    `opt_out`: end marketing texts with the opt-out hint (not for a required topic's).
    `default_locale`: for customers without one (default: config's `locales.default`).

    Raises RenderError for the first template that fails for this customer."""
    rendered = RenderedActions()
    settings = settings_of(env)
    if default_locale is not None:
        settings = replace(settings, default_locale=default_locale)
    job = _Render(env, localized_context(context, settings), default_sender, variant, opt_out, settings.default_locale)
    for index, action in enumerate(campaign.actions):
        if applies is not None and index not in applies:
            continue
        renderer = RENDERERS.get(type(action))
        if renderer is not None:
            renderer(job, index, action, rendered)
    return rendered


def localized_context(context: Mapping[str, Any], settings: RenderSettings) -> dict[str, Any]:
    """The context with `locale` (what the customer reads: see `rendering_locale`) and coupons'
    `amount_off` as money in the workspace currency."""
    customer = context.get("customer")
    locale = rendering_locale(customer.get("locale") if isinstance(customer, Mapping) else None, settings)
    coupons = {
        name: {**coupon, "amount_off": Money(coupon["amount_off"], settings.currency)}
        if isinstance(coupon, Mapping) and isinstance(coupon.get("amount_off"), (int, float, Decimal))
        else coupon
        for name, coupon in (context.get("coupons") or {}).items()
    }
    return {**context, "locale": locale, "coupons": coupons}


_READS: weakref.WeakKeyDictionary[Any, dict[str, frozenset[str] | None]] = weakref.WeakKeyDictionary()


def _every_locale(source: str | dict[str, str] | None) -> list[str]:
    return [] if source is None else list(source.values()) if isinstance(source, dict) else [source]


def template_sources(campaign: Campaign) -> tuple[list[str], list[str]]:
    """The template files and the inline templates (subjects, task titles) of a campaign's actions,
    each locale's of those written by locale (template files' locale variants: see `reads`)."""
    files, inline = [], []
    for action in campaign.actions:
        if isinstance(action, EmailAction):
            arms: list[str | None] = [v.name for v in action.email.variants or []] or [None]
            for arm in arms:
                template, subject, _ = action.email.content(arm)
                files.append(template)
                inline += _every_locale(subject)
            inline += _every_locale(action.email.preheader)
        elif isinstance(action, SmsAction):
            inline += _every_locale(action.sms.text)
        elif isinstance(action, WebhookAction):
            files.append(action.webhook.body)
        elif isinstance(action, TaskAction):
            inline += [*_every_locale(action.task.title), action.task.body or ""]
    return files, inline


def reads(env: SandboxedEnvironment, campaign: Campaign, name: str) -> bool:
    """Does any template of this campaign read the context name `name` (e.g. `last`)? True when in
    doubt. Remembered per environment: a reload of the rules brings a new one."""
    known = _READS.setdefault(env, {})
    if campaign.campaign not in known:
        files, inline = template_sources(campaign)
        files += [variant for file in files for variant in locale_variants(env, file).values()]
        known[campaign.campaign] = globals_read(env, files, inline)
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
