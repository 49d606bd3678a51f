"""A rendered ledger row → the messages its channel's connector takes: one builder per channel.
The row says the channel and carries the address (email, phone); a webhook's URL comes from the
environment variable its action names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.api import OutgoingSms, OutgoingWebhook
from engine.core.channels import NO_CHANNEL, Channel
from engine.core.errors import RenderError, RuntimeFailure, UserInputError
from engine.delivery.runner import Runner
from engine.messages.actions import RenderedActions
from engine.messages.email import SAMPLE_LINKS, build_email
from engine.messages.webhook import signed_headers, webhook_url


def _emails(runner: Runner, row: Any, rendered: RenderedActions, context: dict[str, Any]) -> list[Any]:
    if rendered.emails and not row.email:
        raise RenderError("customer has no email address")
    return [
        build_email(
            delivery_id=row.id,
            sender=email.sender,
            to=row.email,
            subject=email.subject,
            body=email.body,
            is_html=email.is_html,
            unsubscribe_url=context["unsubscribe_url"],
            campaign=row.campaign,
            links={name: context[name] for name in SAMPLE_LINKS if name in context},
        )
        for email in rendered.emails
    ]


def _texts(runner: Runner, row: Any, rendered: RenderedActions, context: dict[str, Any]) -> list[Any]:
    if rendered.sms and not row.phone:
        raise RenderError("customer has no phone number")
    sender = runner.workspace.config.sms.from_
    return [
        OutgoingSms(row.id, row.phone, text.text, sender=sender, encoding=text.encoding, segments=text.segments)
        for text in rendered.sms
    ]


def _calls(runner: Runner, row: Any, rendered: RenderedActions, context: dict[str, Any]) -> list[Any]:
    environ = runner.outputs.environ
    try:
        secret = runner.outputs.webhook_secret()
        urls = {call.url_env: webhook_url(environ, call.url_env) for call in rendered.webhooks}
    except UserInputError as exc:
        # A setting, not this customer: the row stays pending until the operator sets it.
        raise RuntimeFailure("; ".join(p.message for p in exc.problems)) from None
    return [
        OutgoingWebhook(row.id, urls[call.url_env], call.body, signed_headers(secret, row.id, call.body))
        for call in rendered.webhooks
    ]


BUILDERS: dict[Channel, Callable[[Runner, Any, RenderedActions, dict[str, Any]], list[Any]]] = {
    Channel.EMAIL: _emails,
    Channel.SMS: _texts,
    Channel.WEBHOOK: _calls,
}


def build_messages(runner: Runner, row: Any, rendered: RenderedActions, context: dict[str, Any]) -> list[Any]:
    """What the row's channel connector sends for it (nothing for a row of coupons and tasks)."""
    if row.channel == NO_CHANNEL:
        return []
    return BUILDERS[Channel(row.channel)](runner, row, rendered, context)


def address_of(row: Any) -> str | None:
    """The address a row's message goes to, as suppressions key it (lower-cased email, E.164 number)."""
    if row.channel == Channel.SMS:
        return row.phone
    if row.channel in (Channel.EMAIL, NO_CHANNEL) and row.email:
        return str(row.email).lower()
    return None
