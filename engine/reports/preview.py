"""`nudge preview`: the dry run as one self-contained HTML page a marketer opens in a browser.

Per campaign the funnel (matched → each exclusion → targeted) as an inline SVG chart, sample
customers, and for each sample the subject, the HTML email in sandboxed frames at desktop and
phone widths, the text part, a text message as the phone shows it (with its encoding and segments), a webhook's
JSON body, coupons and tasks; render failures with the customer and reason.
No network: styles, chart and the little script that sizes the frames are inline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from engine.audience.plan import CampaignPlan
from engine.core.status import Exclusion
from engine.messages.actions import preview_coupons
from engine.reports.dryrun import DryRun, Sample
from engine.rules.campaign import Campaign

ASSETS = Path(__file__).resolve().parent / "assets"
BAR_WIDTH = 420


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    width: int
    kind: str  # matched | excluded | targeted


def funnel(plan: CampaignPlan) -> list[Bar]:
    """The bars of a campaign's funnel, scaled to the matched count."""
    scale = BAR_WIDTH / plan.matched if plan.matched else 0.0

    def bar(label: str, count: int, kind: str) -> Bar:
        return Bar(label, count, max(2, round(count * scale)) if count else 0, kind)

    bars = [bar("matched", plan.matched, "matched")]
    bars += [bar(str(e).replace("_", " "), plan.excluded[e], "excluded") for e in Exclusion if e in plan.excluded]
    bars.append(bar("targeted", len(plan.targeted), "targeted"))
    return bars


def _sample_view(sample: Sample, coupons: dict[str, dict[str, Any]]) -> dict[str, Any]:
    parts = sample.parts
    return {
        "customer": sample.customer_id,
        "variant": sample.variant,
        "locale": sample.locale,
        "template": parts.get("template"),
        "note": sample.note,
        "error": sample.error,
        "subject": parts.get("subject"),
        "html": parts.get("body"),
        "text": parts.get("text"),
        "sms": parts.get("sms"),
        "sms_encoding": parts.get("sms_encoding"),
        "webhook_body": parts.get("webhook_body"),
        "channels": parts.get("channels"),
        "task_title": parts.get("task_title"),
        "task_body": parts.get("task_body"),
        "coupons": [{"name": name, **spec} for name, spec in coupons.items()],
        "when_notes": [key for key in parts if key.endswith("_when")],
    }


def _environment() -> jinja2.Environment:
    # Our own page, not a marketer's template: a plain (not sandboxed) environment, autoescaped.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ASSETS)), autoescape=True, undefined=jinja2.StrictUndefined
    )


def render_preview(result: DryRun, campaigns: list[Campaign], zone: str, workspace: str) -> str:
    """The whole page as one HTML string."""
    local = ZoneInfo(zone)
    by_name = {c.campaign: c for c in campaigns}
    sections = []
    for plan in result.plans:
        campaign = by_name[plan.campaign]
        coupons = preview_coupons(campaign, result.at)
        samples = [_sample_view(s, coupons) for s in result.samples.get(plan.campaign, [])]
        sections.append(
            {
                "name": plan.campaign,
                "description": campaign.description or "",
                "plan": plan,
                "bars": funnel(plan),
                "samples": samples,
                "failures": [s for s in samples if s["error"]],
                "variants": [
                    {"name": v.name, "weight": v.weight, "targeted": plan.variants.get(v.name, 0)}
                    for v in campaign.variants
                ],
                "sends_email": campaign.sends_email,
            }
        )
    template = _environment().get_template("preview.html.j2")
    return template.render(
        at=result.at.astimezone(local).strftime("%Y-%m-%d %H:%M:%S %Z"),
        zone=zone,
        workspace=workspace,
        generated=datetime.now(local).strftime("%Y-%m-%d %H:%M:%S %Z"),
        sections=sections,
        bar_width=BAR_WIDTH,
        style=(ASSETS / "preview.css").read_text(encoding="utf-8"),
        script=(ASSETS / "preview.js").read_text(encoding="utf-8"),
    )


def write_preview(path: Path, html: str) -> None:
    """Write whole or not at all: a temporary file renamed into place."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text(html, encoding="utf-8")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
