"""Text messages beside emails, in the same run: the same customers (the delivery bucket, each with an
address and a phone number, opted in to both), one campaign with one `email` action and one with one
`sms` action, each delivered into its outbox by `nudge run` as a user runs it. In turns, best of two
each, so a machine busy for a moment does not decide the ratio."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import yaml

from .generate import delivery_campaign

CAMPAIGNS = {
    "email": delivery_campaign(
        "bench-email",
        "Channel benchmark: one email, no coupon.",
        [{"email": {"template": "bench_plain.html.j2", "subject": "{{ customer.first_name }}, 10% off"}}],
    ),
    "sms": delivery_campaign(
        "bench-sms",
        "Channel benchmark: one text, no coupon.",
        [{"sms": {"text": "{{ customer.first_name }}, 10% off everything this week at the shop"}}],
    ),
}
PLAIN_TEMPLATE = (
    '{% extends "_layout.html.j2" %}{% block content %}<h1>Hi {{ customer.first_name }}</h1>'
    "<p>10% off everything this week at the shop.</p>{% endblock %}\n"
)
# Occurrence minutes of the turns (email, sms, email, sms): each delivery is a fresh occurrence, and
# none shares a minute with the other delivery phases' occurrences of their own campaigns.
TURNS = ((20, "email"), (21, "sms"), (22, "email"), (23, "sms"))

Deliver = Callable[..., dict]


def add_campaigns(ws: Path) -> None:
    """The two campaigns (disabled: only named runs deliver them) and the email's template."""
    for rule in CAMPAIGNS.values():
        (ws / "rules" / f"{rule['campaign']}.yaml").write_text(yaml.safe_dump(rule, sort_keys=False))
    (ws / "templates" / "bench_plain.html.j2").write_text(PLAIN_TEMPLATE)


def measure(ws: Path, at: str, store_url: str, deliver: Deliver) -> dict:
    """Email and SMS outbox delivery of the same customers, in turns; msg/s is the best of each."""
    add_campaigns(ws)
    runs: dict[str, list[dict]] = {"email": [], "sms": []}
    for minute, channel in TURNS:
        print(f"[delivery] {channel} outbox, one {channel} action", file=sys.stderr)
        moment = datetime.fromisoformat(at).replace(minute=minute).isoformat()
        name = CAMPAIGNS[channel]["campaign"]
        runs[channel].append(deliver(ws, moment, store_url, f"{channel} outbox", campaign=name))
    best = {channel: max(r["messages_per_second"] for r in found) for channel, found in runs.items()}
    return {
        "email_per_second": best["email"],
        "sms_per_second": best["sms"],
        "ratio_sms_email": best["sms"] / best["email"],
        "runs": runs,
    }


def table_rows(row: Callable[[str, Callable[[dict], str]], None], number: Callable[..., str]) -> None:
    """The comparison's lines in the benchmark's table."""
    row("delivery email outbox, 1 email action: msg/s", lambda d: number(d["delivery_channels"]["email_per_second"], 0))
    row("delivery SMS outbox, 1 sms action: msg/s", lambda d: number(d["delivery_channels"]["sms_per_second"], 0))
    row("ratio SMS / email outbox", lambda d: number(d["delivery_channels"]["ratio_sms_email"]))
