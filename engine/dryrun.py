"""`nudge dry-run`: plan every chosen campaign at one instant and render sample messages. Writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import Connection

from .loader import Workspace
from .model import Campaign, CouponAction, EmailAction, TaskAction, action_when
from .plan import CampaignPlan, Planner
from .context import build_contexts
from .render import RenderError, render_file, render_string
from .textify import html_to_text


@dataclass
class Sample:
    customer_id: str
    parts: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"customer": self.customer_id, **self.parts, **({"error": self.error} if self.error else {})}


def preview_coupons(campaign: Campaign, at: datetime) -> dict[str, dict[str, Any]]:
    """Coupon stand-ins for previews: clearly not real codes, nothing stored."""
    coupons = {}
    for action in campaign.actions:
        if isinstance(action, CouponAction):
            spec = action.coupon
            coupons[spec.name] = {"code": f"{spec.prefix or 'PREVIEW'}-PREVIEW", "percent_off": spec.percent_off,
                                  "amount_off": spec.amount_off, "expires_at": at + spec.valid_for}
    return coupons


def render_samples(conn: Connection, workspace: Workspace, campaign: Campaign, ids: list[str],
                   at: datetime) -> list[Sample]:
    """Render the email and task texts of a campaign for some customers."""
    env = workspace.environment()
    preview = preview_coupons(campaign, at)
    coupons = {cid: preview for cid in ids}
    contexts = build_contexts(conn, ids, at, campaign, coupons)
    samples = []
    for cid in ids:
        sample = Sample(cid)
        context = {**contexts[cid], "unsubscribe_url": "https://example.invalid/unsubscribe/PREVIEW"}
        try:
            for i, action in enumerate(campaign.actions):
                if action_when(action) is not None:
                    sample.parts[f"action_{i}_when"] = "evaluated at run time"
                if isinstance(action, EmailAction):
                    sample.parts["subject"] = render_string(env, action.email.subject, context)
                    body = render_file(env, action.email.template, context)
                    sample.parts["body"] = body
                    sample.parts["text"] = html_to_text(body) if action.email.template.endswith(
                        (".html", ".htm", ".html.j2", ".htm.j2")) else body
                elif isinstance(action, TaskAction):
                    sample.parts["task_title"] = render_string(env, action.task.title, context)
                    if action.task.body:
                        sample.parts["task_body"] = render_string(env, action.task.body, context)
        except RenderError as exc:
            sample.error = str(exc)
        samples.append(sample)
    return samples


@dataclass
class DryRun:
    at: datetime
    plans: list[CampaignPlan]
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        at = self.at if self.at.tzinfo else self.at.replace(tzinfo=timezone.utc)
        data: dict[str, Any] = {"at": at.isoformat(), "campaigns": [p.as_json() for p in self.plans]}
        if self.samples:
            data["samples"] = {name: [s.as_json() for s in samples] for name, samples in self.samples.items()}
        return data


def dry_run(conn: Connection, workspace: Workspace, campaigns: list[Campaign], at: datetime,
            render: int = 0) -> DryRun:
    """Plan campaigns (highest priority first, as the run would) and render up to `render` samples each."""
    planner = Planner(conn=conn, config=workspace.config, segments=workspace.segments, at=at)
    result = DryRun(at=at, plans=[])
    for campaign in campaigns:
        plan = planner.plan(campaign)
        result.plans.append(plan)
        if render > 0:
            result.samples[campaign.campaign] = render_samples(conn, workspace, campaign, plan.targeted[:render], at)
    return result
