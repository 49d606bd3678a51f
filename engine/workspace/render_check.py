"""Render every campaign's templates once at validate time, so an unknown filter, a missing
`extends`/`include` layout or a misspelt `last.TYPE` is found before the first send, not as
`failed` deliveries at the daemon's next tick.

The sample is a customer from the store who is in the campaign's audience when there is one;
otherwise a synthetic customer whose `last` knows every event type the store or the rules name
(so a misspelt type is still an error)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import jinja2
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.audience.planner import Planner
from engine.core.errors import Problem, RenderError
from engine.core.fields import CUSTOMER_FIELDS, STANDARD_EVENT_TYPES
from engine.messages.actions import preview_coupons, render_actions
from engine.messages.context import MatchedEvents, build_contexts
from engine.messages.email import SAMPLE_LINKS
from engine.messages.shop import sample_names
from engine.messages.templates import LastEvents
from engine.rules.actions import EmailAction
from engine.rules.campaign import Campaign
from engine.rules.conditions import ConditionKind, matched_names, walk
from engine.rules.journey import expand, journey_of
from engine.store.tables import events
from engine.workspace.loader import LoadedCampaign, Workspace
from engine.workspace.locale_check import email_warnings, written_locales


class SampleProperties(dict[str, Any]):
    """Any property a template reads of a synthetic event: the store is what says which exist."""

    def __missing__(self, key: str) -> str:
        return f"sample {key}"


class SyntheticLast(LastEvents):
    """`last.TYPE` for a known TYPE is a plausible event; an unknown TYPE stays an error."""

    def __init__(self, known: Iterable[str], at: datetime):
        super().__init__()
        self.known, self.at = set(known), at

    def __missing__(self, key: str) -> Any:
        if key in self.known:
            return {"type": key, "occurred_at": self.at, "properties": SampleProperties()}
        return jinja2.Undefined(hint=f"no event type {key!r} in the store or the rules (a typo?)")


def _synthetic_customer() -> dict[str, Any]:
    person: dict[str, Any] = {name: None for name in CUSTOMER_FIELDS}
    person.update(
        id="sample",
        email="sample@example.com",
        first_name="Alex",
        last_name="Sample",
        country="US",
        timezone="UTC",
        email_opt_in=True,
        attributes=SampleProperties(),
    )
    return person


def _known_types(conn: Connection | None, campaign: Campaign, segments: dict[str, Any]) -> set[str]:
    known = set(STANDARD_EVENT_TYPES)
    for node, _ in walk(campaign.audience):
        if node.kind is ConditionKind.EVENT:
            known.add(node.event)
        elif node.kind is ConditionKind.SEGMENT and node.segment in segments:
            known.update(n.event for n, _ in walk(segments[node.segment]) if n.kind is ConditionKind.EVENT)
    if conn is not None:
        known.update(conn.execute(sa.select(events.c.type).distinct()).scalars())
    return known


def _sample(conn: Connection | None, workspace: Workspace, campaign: Campaign, at: datetime) -> tuple[str, dict]:
    coupons = preview_coupons(campaign, at)
    if conn is not None:
        planner = Planner(conn=conn, config=workspace.config, segments=workspace.segments, at=at)
        chosen = planner.first_targeted(campaign)
        if chosen is not None:
            return f"customer {chosen}", build_contexts(
                conn, [chosen], at, campaign, {chosen: coupons}, segments=workspace.segments
            )[chosen]
    leaves, _ = matched_names(campaign.audience, workspace.segments)
    info = {"name": campaign.campaign, "description": campaign.description, "priority": campaign.priority}
    context = {
        "customer": _synthetic_customer(),
        "campaign": info,
        "coupons": coupons,
        "at": at,
        "last": SyntheticLast(_known_types(conn, campaign, workspace.segments), at),
        **sample_names(),
        **(
            {"trigger": {"type": campaign.trigger.event, "occurred_at": at, "properties": SampleProperties()}}
            if campaign.trigger is not None
            else {}
        ),
        "matched": MatchedEvents(
            {
                name: {"type": leaf.event, "occurred_at": at, "properties": SampleProperties()}
                for name, leaf in leaves.items()
            }
        ),
    }
    return "a sample customer", context


def _action_path(unit: Campaign, index: int) -> tuple:
    step = journey_of(unit)
    return (("steps", step.index, "actions") if step is not None else ("actions",)) + (index,)


def _renders(workspace: Workspace, action: Any) -> list[tuple[str | None, str | None, str]]:
    """(variant, locale, label) to render an action as: every A/B variant of an email, in every
    locale it is written in (config's `locales.default` first); once otherwise."""
    arms: list[str | None] = [None]
    if isinstance(action, EmailAction) and action.email.variants:
        arms = [v.name for v in action.email.variants]
    locales: list[str | None] = [*written_locales(workspace.environment(), workspace.config, action)] or [None]
    found = []
    for arm in arms:
        for locale in locales:
            words = [f"variant {arm}" for _ in [arm] if arm] + [tag for tag in [locale] if tag]
            found.append((arm, locale, f" ({', '.join(words)})" if words else ""))
    return found


def _sms_note(loaded: LoadedCampaign, loc: tuple, label: str, text: Any) -> Problem:
    line, col = loaded.located.position(loc)
    plural = "s" if text.segments > 1 else ""
    return Problem(
        loaded.path,
        line,
        col,
        f"text message{label}: {text.encoding}, {text.segments} segment{plural} "
        f"({len(text.text)} characters with the opt-out hint)",
        "note",
    )


def render_problems(
    workspace: Workspace, conn: Connection | None, at: datetime | None = None
) -> tuple[list[Problem], list[Problem], list[Problem]]:
    """Each action of each campaign rendered (each variant, each locale it is written in): the
    errors of those that fail, naming the locale; warnings (a subject not translated, an email
    Gmail clips); a note per text message with its encoding and segments."""
    at = at or datetime.now(timezone.utc)
    env = workspace.environment()
    problems: list[Problem] = []
    warnings: list[Problem] = []
    notes: list[Problem] = []
    units = [(loaded, unit) for loaded in workspace.campaigns.values() for unit in expand(loaded.campaign)]
    for loaded, unit in units:
        who, context = _sample(conn, workspace, unit, at)
        context.update(SAMPLE_LINKS)
        for index, action in enumerate(unit.actions):
            line, col = loaded.located.position(_action_path(unit, index))
            for variant, locale, label in _renders(workspace, action):
                job = {**context, "customer": {**context["customer"], "locale": locale}} if locale else context
                try:
                    rendered = render_actions(
                        env, unit, job, default_sender=workspace.config.email.from_, applies={index}, variant=variant
                    )
                except RenderError as exc:
                    problems.append(Problem(loaded.path, line, col, f"does not render for {who}{label}: {exc}"))
                    continue
                notes += [_sms_note(loaded, _action_path(unit, index), label, text) for text in rendered.sms]
                if isinstance(action, EmailAction):
                    warnings += [
                        Problem(loaded.path, line, col, f"email{label}: {message}", "warning")
                        for email in rendered.emails
                        for message in email_warnings(workspace.config, action, variant, locale, email)
                    ]
    return problems, warnings, notes
