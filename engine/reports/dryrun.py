"""`nudge dry-run`: plan every chosen campaign at one instant and render sample messages. Writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from engine.audience.planner import CampaignPlan, Planner, variant_for
from engine.core.clock import aware_utc
from engine.core.errors import RenderError
from engine.messages.actions import preview_coupons, render_actions
from engine.messages.context import build_contexts
from engine.rules.campaign import Campaign, action_when
from engine.workspace.loader import Workspace


@dataclass
class Sample:
    customer_id: str
    parts: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"customer": self.customer_id, **self.parts, **({"error": self.error} if self.error else {})}


def render_samples(
    conn: Connection, workspace: Workspace, campaign: Campaign, ids: list[str], at: datetime
) -> list[Sample]:
    """Render the email and task texts of a campaign for some customers."""
    env = workspace.environment()
    preview = preview_coupons(campaign, at)
    contexts = build_contexts(conn, ids, at, campaign, {cid: preview for cid in ids}, segments=workspace.segments)
    samples = []
    weights = [(v.name, v.weight) for v in campaign.variants]
    for cid in ids:
        sample = Sample(cid)
        context = {**contexts[cid], "unsubscribe_url": "https://example.invalid/unsubscribe/PREVIEW"}
        for i, action in enumerate(campaign.actions):
            if action_when(action) is not None:
                sample.parts[f"action_{i}_when"] = "evaluated at run time"
        try:
            variant = variant_for(campaign.campaign, cid, weights)
            if variant:
                sample.parts["variant"] = variant
            rendered = render_actions(
                env, campaign, context, default_sender=workspace.config.email.from_, variant=variant
            )
        except RenderError as exc:
            sample.error = str(exc)
        else:
            for email in rendered.emails:
                sample.parts.update(subject=email.subject, body=email.body, text=email.text)
            for task in rendered.tasks:
                sample.parts["task_title"] = task.title
                if task.body:
                    sample.parts["task_body"] = task.body
        samples.append(sample)
    return samples


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


def dry_run(conn: Connection, workspace: Workspace, campaigns: list[Campaign], at: datetime, render: int = 0) -> DryRun:
    """Plan campaigns (highest priority first, as the run would) and render up to `render` samples each."""
    planner = Planner(conn=conn, config=workspace.config, segments=workspace.segments, at=at)
    result = DryRun(at=at, plans=[])
    for campaign in campaigns:
        plan = planner.plan(campaign)
        result.plans.append(plan)
        if render > 0:
            result.samples[campaign.campaign] = render_samples(conn, workspace, campaign, plan.targeted[:render], at)
    return result
