"""`nudge send-test`: one campaign rendered for one customer and sent through the configured
connector to a test address only — subject prefixed [TEST], stand-in coupon codes, no ledger row,
nothing stored, so the campaign itself is untouched. A customer named with --as who would not be
targeted now is still rendered for, and the result says what the campaign would do and why."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from connectors.api import TEST_DELIVERY_ID, ConnectorFatal
from engine.audience.explain import Node, explain, require_customer
from engine.audience.planner import Planner
from engine.audience.reasons import reason
from engine.core.errors import Problem, RenderError, RuntimeFailure, UserInputError
from engine.delivery.outlets import Outputs
from engine.messages.actions import preview_coupons, render_actions
from engine.messages.context import build_contexts
from engine.messages.email import build_email, links
from engine.messages.unsubscribe import sign
from engine.rules.campaign import Campaign
from engine.rules.conditions import ConditionKind, children
from engine.store import Store
from engine.workspace.loader import Workspace

NOT_IN_AUDIENCE = "not_in_audience"
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class TestSend:
    customer: str
    to: str
    subject: str
    status: str
    reason: str | None
    outcome: str = "targeted"  # what the campaign would do with this customer now
    why: str | None = None  # for any other outcome: the reason, as `nudge explain` gives it
    written_to: str | None = None  # the connector's id for it (the outbox: the file's name)


def _customer(
    store: Store, workspace: Workspace, campaign: Campaign, at: datetime, chosen: str | None
) -> tuple[str, str, str | None]:
    """(customer, outcome now, why) — the first targeted customer unless one is named."""
    with store.engine.connect() as conn:
        planner = Planner(conn=conn, config=workspace.config, segments=workspace.segments, at=at)
        if chosen is not None:
            require_customer(conn, chosen)
            return chosen, *_outcome(conn, planner, workspace, campaign, chosen)
        first = planner.first_targeted(campaign)
    if first is None:
        raise UserInputError(
            [Problem("--as", None, None, f"nobody is targeted by {campaign.campaign} now: name a customer with --as")]
        )
    return first, "targeted", None


def _outcome(
    conn: Connection, planner: Planner, workspace: Workspace, campaign: Campaign, customer: str
) -> tuple[str, str | None]:
    """What the campaign would do with this customer now, and why (explain's reason)."""
    outcome = next((str(row.outcome) for row in planner.classify(campaign, only=customer)), NOT_IN_AUDIENCE)
    if outcome != NOT_IN_AUDIENCE:
        return outcome, reason(conn, campaign, workspace.config, customer, outcome, planner.at)
    tree = explain(conn, campaign, planner.context(), customer)
    return outcome, "; ".join(_failing(campaign.audience, tree, workspace.segments)) or None


def _failing(condition: Any, node: Node, segments: dict[str, Any]) -> list[str]:
    """The conditions that keep a customer out of an audience, with the value they have."""
    if node.passed:
        return []
    kind = condition.kind
    if kind is ConditionKind.ALL:
        return [
            f
            for (_, child), sub in zip(children(condition), node.children, strict=True)
            for f in _failing(child, sub, segments)
        ]
    if kind is ConditionKind.SEGMENT and condition.segment in segments and node.children:
        inside = _failing(segments[condition.segment], node.children[0], segments)
        return [f"{node.label} ({'; '.join(inside)})" if inside else node.label]
    if kind is ConditionKind.NOT and node.children:
        return [f"not: {node.children[0].label} holds{_value(node.children[0])}"]
    return [f"{node.label} fails{_value(node)}"]


def _value(node: Node) -> str:
    return "" if node.value is None else f", value {json.dumps(node.value, default=str)}"


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
    chosen, outcome, why = _customer(store, workspace, campaign, at, customer)
    urls = links(workspace.config.email.unsubscribe_base, sign(outputs.secret, "send-test", to, campaign.campaign, at))
    link = urls["unsubscribe_url"]
    with store.engine.connect() as conn:  # open while rendering: recommend() reads the store
        context = build_contexts(
            conn, [chosen], at, campaign, {chosen: preview_coupons(campaign, at)}, segments=workspace.segments
        )[chosen]
        context.update(urls)
        try:
            rendered = render_actions(
                workspace.environment(), campaign, context, default_sender=workspace.config.email.from_
            )
        except RenderError as exc:
            problem = Problem(campaign.campaign, None, None, f"does not render for {chosen}: {exc}")
            raise UserInputError([problem]) from None
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
    return TestSend(chosen, to, message.subject, str(result.status), result.reason, outcome, why, result.provider_id)
