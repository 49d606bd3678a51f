"""Recommendations beside a plain email, in the same run: the delivery bucket's customers, one
campaign whose template calls `recommend` three times (each strategy, three products each) and one
whose template is the same without them, each delivered by `nudge run` into an outbox in memory
(what nudge itself costs, not the disk), in turns, best of two each. The products are the
generator's catalogue (one per 100 customers), imported with the customers and events."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import yaml

from .generate import delivery_campaign

BODY = "<h1>Hi {{ customer.first_name }}</h1><p>10% off everything this week at the shop.</p>"
PICK = '{% for p in recommend("STRATEGY", 3) %}<p><a href="{{ p.url }}">{{ p.name }}</a> {{ p.price }}</p>{% endfor %}'
PICKS = "".join(PICK.replace("STRATEGY", s) for s in ("top_in_favourite_category", "also_bought", "viewed_not_bought"))
TEMPLATES = {
    "plain": '{% extends "_layout.html.j2" %}{% block content %}' + BODY + "{% endblock %}\n",
    "recommend": '{% extends "_layout.html.j2" %}{% block content %}' + BODY + PICKS + "{% endblock %}\n",
}
# Occurrence minutes of the turns: none shared with the other delivery phases' occurrences.
TURNS = ((30, "plain"), (31, "recommend"), (32, "plain"), (33, "recommend"))

Deliver = Callable[..., dict]


def campaign(kind: str) -> dict:
    return delivery_campaign(
        f"bench-{kind}-email",
        f"Recommendation benchmark: one email, {kind}.",
        [{"email": {"template": f"bench_{kind}.html.j2", "subject": "{{ customer.first_name }}, 10% off"}}],
    )


def measure(ws: Path, at: str, store_url: str, deliver: Deliver, outbox: Callable[[Path], None], folder: Path) -> dict:
    """Both campaigns delivered into `folder` (in memory) in turns; `outbox(dir)` points the
    workspace's outbox there. msg/s is the best of each."""
    for kind, text in TEMPLATES.items():
        (ws / "rules" / f"bench-{kind}-email.yaml").write_text(yaml.safe_dump(campaign(kind), sort_keys=False))
        (ws / "templates" / f"bench_{kind}.html.j2").write_text(text)
    runs: dict[str, list[dict]] = {kind: [] for kind in TEMPLATES}
    for minute, kind in TURNS:
        target = folder / f"recommend-{minute}"  # emptied after each run: memory is not unlimited
        outbox(target)
        print(f"[delivery] outbox in memory, {kind} template", file=sys.stderr)
        moment = datetime.fromisoformat(at).replace(minute=minute).isoformat()
        runs[kind].append(deliver(ws, moment, store_url, f"{kind} template", campaign=f"bench-{kind}-email"))
        shutil.rmtree(target, ignore_errors=True)
    best = {kind: max(r["messages_per_second"] for r in found) for kind, found in runs.items()}
    return {
        "plain_per_second": best["plain"],
        "recommend_per_second": best["recommend"],
        "ratio": best["recommend"] / best["plain"],
        "runs": runs,
    }


def table_rows(row: Callable[[str, Callable[[dict], str]], None], number: Callable[..., str]) -> None:
    """The comparison's lines in the benchmark's table."""
    row("delivery in memory, plain template: msg/s", lambda d: number(d["recommendations"]["plain_per_second"], 0))
    row("delivery in memory, 3× recommend: msg/s", lambda d: number(d["recommendations"]["recommend_per_second"], 0))
    row("ratio 3× recommend / plain (target ≥ 0.80)", lambda d: number(d["recommendations"]["ratio"]))
