"""`nudge send-test`: one campaign rendered for one customer and sent through the configured
connector to a test address only — subject prefixed [TEST], stand-in coupon codes, no ledger row,
nothing stored, so the campaign itself is untouched."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from connectors.api import ConnectorFatal
from engine.audience.explain import require_customer
from engine.audience.planner import Planner
from engine.core.errors import Problem, RenderError, RuntimeFailure, UserInputError
from engine.delivery.outlets import Outputs
from engine.messages.actions import preview_coupons, render_actions
from engine.messages.context import build_contexts
from engine.messages.email import build_email, unsubscribe_link
from engine.messages.unsubscribe import sign
from engine.rules.campaign import Campaign
from engine.store import Store
from engine.workspace.loader import Workspace

TEST_DELIVERY_ID = 0  # never a ledger id (they start at 1): the outbox file says what it was
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class TestSend:
    customer: str
    to: str
    subject: str
    status: str
    reason: str | None


def _customer(store: Store, workspace: Workspace, campaign: Campaign, at: datetime, chosen: str | None) -> str:
    with store.engine.connect() as conn:
        if chosen is not None:
            require_customer(conn, chosen)
            return chosen
        planner = Planner(conn=conn, config=workspace.config, segments=workspace.segments, at=at)
        first = planner.first_targeted(campaign)
    if first is None:
        raise UserInputError(
            [Problem("--as", None, None, f"nobody is targeted by {campaign.campaign} now: name a customer with --as")]
        )
    return first


def send_test(
    workspace: Workspace,
    store: Store,
    outputs: Outputs,
    campaign: Campaign,
    to: str,
    at: datetime,
    customer: str | None = None,
) -> TestSend:
    """Render for `customer` (default: the first targeted) and send to `to` only."""
    if not _ADDRESS.match(to):
        raise UserInputError([Problem("--to", None, None, f"not an email address: {to!r}")])
    if not campaign.sends_email:
        raise UserInputError([Problem(campaign.campaign, None, None, "this campaign sends no email")])
    chosen = _customer(store, workspace, campaign, at, customer)
    with store.engine.connect() as conn:
        context = build_contexts(
            conn, [chosen], at, campaign, {chosen: preview_coupons(campaign, at)}, segments=workspace.segments
        )[chosen]
    link = unsubscribe_link(
        workspace.config.email.unsubscribe_base, sign(outputs.secret, "send-test", to, campaign.campaign, at)
    )
    context["unsubscribe_url"] = link
    try:
        rendered = render_actions(
            workspace.environment(), campaign, context, default_sender=workspace.config.email.from_
        )
    except RenderError as exc:
        raise UserInputError([Problem(campaign.campaign, None, None, f"does not render for {chosen}: {exc}")]) from None
    email = rendered.emails[0]
    message = build_email(
        delivery_id=TEST_DELIVERY_ID,
        sender=email.sender,
        to=to,
        subject=f"[TEST] {email.subject}",
        body=email.body,
        is_html=email.is_html,
        unsubscribe_url=link,
        campaign=campaign.campaign,
    )
    try:
        result = outputs.email().send([message])[0]
    except ConnectorFatal as exc:
        raise RuntimeFailure(f"test send failed: {exc}") from None
    return TestSend(chosen, to, message.subject, str(result.status), result.reason)
