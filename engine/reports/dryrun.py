"""`nudge dry-run`: plan every chosen campaign at one instant and render sample messages. Writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from engine.audience.assignment import variant_for
from engine.audience.plan import CampaignPlan
from engine.audience.planner import Planner
from engine.core.clock import aware_utc
from engine.core.errors import RenderError
from engine.messages.formatting import rendering_locale, settings_of
from engine.rules.actions import action_channel, action_when
from engine.rules.campaign import Campaign
from engine.workspace.loader import Workspace

if TYPE_CHECKING:
    from engine.messages.actions import RenderedActions


@dataclass
class Sample:
    customer_id: str
    parts: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    variant: str | None = None  # the A/B variant rendered
    locale: str | None = None  # the locale rendered in (the customer's, the default's, or --locale)
    note: str | None = None  # e.g. a variant nobody targeted now gets, rendered for another customer

    def as_json(self) -> dict[str, Any]:
        return {
            "customer": self.customer_id,
            **self.parts,
            **({"note": self.note} if self.note else {}),
            **({"error": self.error} if self.error else {}),
        }


@dataclass(frozen=True)
class Pick:
    customer_id: str
    variant: str | None = None
    note: str | None = None


def pick_samples(campaign: Campaign, targeted: list[str], n: int) -> list[Pick]:
    """Up to `n` targeted customers to render. An A/B test shows every variant: customers are
    taken from each variant in turn (a, b, a, b, …), at least one per variant even when `n` is
    smaller; a variant no targeted customer gets is rendered for the first sample, and says so."""
    weights = [(v.name, v.weight) for v in campaign.variants]
    if not weights or not targeted or n <= 0:
        return [Pick(cid) for cid in targeted[:n]]
    queues: dict[str, list[str]] = {name: [] for name, _ in weights}
    for cid in targeted:
        arm = variant_for(campaign.campaign, cid, weights)
        if arm is not None and len(queues[arm]) < n:
            queues[arm].append(cid)
            if all(len(q) == n for q in queues.values()):
                break
    picks: list[Pick] = []
    for index in range(n):
        picks += [Pick(q[index], name) for name, q in queues.items() if index < len(q)]
    picks = picks[: max(n, sum(1 for q in queues.values() if q))]
    first = picks[0].customer_id
    for name, queue in queues.items():
        if not queue:
            note = f"no customer targeted now gets variant {name}: rendered for {first}, who gets another"
            picks.append(Pick(first, name, note))
    return picks


def render_samples(
    conn: Connection,
    workspace: Workspace,
    campaign: Campaign,
    picks: list[Pick],
    at: datetime,
    partial: dict[str, tuple[str, ...]] | None = None,
    locale: str | None = None,
) -> list[Sample]:
    """Render the messages and task texts of a campaign for some customers (each for their variant,
    and only on the channels they are reached on: `partial` names those of who is not reached on all),
    in each customer's locale, or in `locale` for all of them."""
    # Rendering's modules (HTML email, SMS, webhooks, the message context) load only when a
    # command renders: a dry run without --render plans and counts, and starts faster without them.
    from engine.messages.actions import preview_coupons, render_actions
    from engine.messages.context import build_contexts
    from engine.messages.email import SAMPLE_LINKS

    env = workspace.environment()
    preview = preview_coupons(campaign, at)
    ids = sorted({p.customer_id for p in picks})
    contexts = build_contexts(conn, ids, at, campaign, {cid: preview for cid in ids}, segments=workspace.segments)
    samples = []
    for pick in picks:
        sample = Sample(pick.customer_id, variant=pick.variant, note=pick.note)
        context = {**contexts[pick.customer_id], **SAMPLE_LINKS}
        if locale is not None:
            context["customer"] = {**context["customer"], "locale": locale}
        sample.locale = rendering_locale(context["customer"].get("locale"), settings_of(env))
        sample.parts["locale"] = sample.locale
        for i, action in enumerate(campaign.actions):
            if action_when(action) is not None:
                sample.parts[f"action_{i}_when"] = "evaluated at run time"
        if pick.variant:
            sample.parts["variant"] = pick.variant
        reached = (partial or {}).get(pick.customer_id)
        applies = None if reached is None else channel_actions(campaign, reached)
        if reached is not None:
            sample.parts["channels"] = ", ".join(reached) or "none"
        try:
            rendered = render_actions(
                env,
                campaign,
                context,
                default_sender=workspace.config.email.from_,
                variant=pick.variant,
                applies=applies,
            )
        except RenderError as exc:
            sample.error = str(exc)
        else:
            _show(rendered, sample.parts)
        samples.append(sample)
    return samples


def _show(rendered: RenderedActions, parts: dict[str, str]) -> None:
    """What a sample shows of a customer's rendered messages and task texts."""
    for email in rendered.emails:
        parts.update(subject=email.subject, body=email.body, text=email.text)
        parts["template"] = email.template or ""
    for text in rendered.sms:
        parts["sms"] = text.text
        plural = "s" if text.segments > 1 else ""
        parts["sms_encoding"] = f"{text.encoding}, {text.segments} segment{plural}"
    for call in rendered.webhooks:
        parts["webhook_body"] = call.body
    for task in rendered.tasks:
        parts["task_title"] = task.title
        if task.body:
            parts["task_body"] = task.body


def channel_actions(campaign: Campaign, reached: tuple[str, ...]) -> set[int]:
    """The actions a customer reached on these channels gets: their messages, coupons and tasks."""
    return {i for i, a in enumerate(campaign.actions) if (c := action_channel(a)) is None or c in reached}


@dataclass
class DryRun:
    at: datetime
    plans: list[CampaignPlan]
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def render_failures(self) -> dict[str, int]:
        """Campaign → how many of its rendered samples failed (only campaigns with failures)."""
        failed = {name: sum(1 for s in samples if s.error) for name, samples in self.samples.items()}
        return {name: n for name, n in failed.items() if n}

    def as_json(self) -> dict[str, Any]:
        at = aware_utc(self.at)
        failures = self.render_failures()
        campaigns = [
            {**p.as_json(), **({"render_failures": failures[p.campaign]} if p.campaign in failures else {})}
            for p in self.plans
        ]
        data: dict[str, Any] = {"at": at.isoformat(), "campaigns": campaigns}
        if self.samples:
            data["samples"] = {name: [s.as_json() for s in samples] for name, samples in self.samples.items()}
        return data


def dry_run(
    conn: Connection,
    workspace: Workspace,
    campaigns: list[Campaign],
    at: datetime,
    render: int = 0,
    locale: str | None = None,
) -> DryRun:
    """Plan campaigns (highest priority first, as the run would), counting the targeted by locale,
    and render `render` samples each (an A/B test: at least one per variant), in `locale` if given."""
    planner = Planner(conn=conn, config=workspace.config, segments=workspace.segments, at=at, count_locales=True)
    result = DryRun(at=at, plans=[])
    for campaign in campaigns:
        plan = planner.plan(campaign)
        result.plans.append(plan)
        if render > 0:
            picks = pick_samples(campaign, plan.targeted, render)
            samples = render_samples(conn, workspace, campaign, picks, at, plan.partial, locale)
            result.samples[campaign.campaign] = samples
    return result
