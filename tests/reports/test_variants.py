"""A/B variants and goals: stable assignment, recorded on the ledger, measured against the holdout."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from rich.console import Console

from engine.audience.assignment import in_holdout, variant_for
from engine.cli.render import dry_run_table
from engine.delivery.occurrence import run_occurrence
from engine.reports.dryrun import dry_run
from engine.reports.lift import Arm, lift, proportion_interval, verdict
from engine.reports.preview import render_preview
from engine.store.tables import deliveries
from tests.support.helpers import Clock, make_runner, write_workspace
from tests.support.store import NOW, seed

AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def within_binomial(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("weights", [[("a", 50), ("b", 50)], [("a", 20), ("b", 30), ("c", 50)]])
def test_assignment_is_stable_proportional_and_independent_of_the_holdout(weights):
    ids = [f"cust-{i:05d}" for i in range(10_000)]
    first = [variant_for("promo", c, weights) for c in ids]
    assert first == [variant_for("promo", c, weights) for c in ids]  # same answer every run, every machine
    for name, weight in weights:
        assert within_binomial(first.count(name), len(ids), weight / 100), name
    held = [v for c, v in zip(ids, first, strict=True) if in_holdout("promo", c, 10)]
    for name, weight in weights:  # the control group is split like everyone else
        assert within_binomial(held.count(name), len(held), weight / 100), name


CAMPAIGN = {
    "campaign": "promo",
    "schedule": "0 9 * * *",
    "audience": {"attribute": "country", "eq": "US"},
    "holdout": "20%",
    "goal": {"event": "email_click", "within": "2d"},
    "actions": [
        {
            "email": {
                "variants": [
                    {"name": "a", "weight": 50, "template": "a.html.j2", "subject": "A for {{ customer.id }}"},
                    {"name": "b", "weight": 50, "template": "b.html.j2", "subject": "B for {{ customer.id }}"},
                ]
            }
        }
    ],
}


def test_each_customer_gets_their_variant_recorded_and_the_dry_run_counts_them(store, tmp_path):
    seed(
        store,
        customers=[
            {"id": f"c{i:03d}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"} for i in range(200)
        ],
    )
    ws = write_workspace(tmp_path, [CAMPAIGN], templates={"a.html.j2": "<p>A</p>\n", "b.html.j2": "<p>B</p>\n"})
    campaign = ws.campaigns["promo"].campaign
    with store.engine.connect() as conn:
        planned = dry_run(conn, ws, [campaign], AT, render=4)
    counts = planned.as_json()["campaigns"][0]["variants"]
    assert sum(counts.values()) == planned.plans[0].as_json()["targeted"]
    assert all(s.parts["subject"].startswith(s.parts["variant"].upper()) for s in planned.samples["promo"])
    run_occurrence(make_runner(ws, store, Clock(AT)), campaign, AT)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.customer_id, deliveries.c.status, deliveries.c.variant)).all()
    assert {r.variant for r in rows if r.status == "held_out"} == {None}
    sent = [r for r in rows if r.status == "sent"]
    assert {r.variant: sum(1 for s in sent if s.variant == r.variant) for r in sent} == counts
    assert all(r.variant == variant_for("promo", r.customer_id, [("a", 50), ("b", 50)]) for r in sent)
    for file in (tmp_path / "outbox").glob("*.eml"):
        text = file.read_text()
        assert ("Subject: A for" in text) == ("<p>A</p>" in text)


def _ledger(store, rows):
    with store.engine.begin() as conn:
        for customer, status, variant in rows:
            conn.execute(
                sa.insert(deliveries).values(
                    campaign="promo",
                    customer_id=customer,
                    occurrence=AT.replace(tzinfo=None),
                    status=status,
                    variant=variant,
                    created_at=NOW.replace(tzinfo=None),
                    updated_at=NOW.replace(tzinfo=None),
                )
            )


def test_report_numbers_match_a_hand_computation(store):
    people = [f"p{i:02d}" for i in range(30)]
    seed(store, customers=[{"id": p} for p in people])
    # a: 10 sent, 6 click in the goal window; b: 10 sent, 2 click; holdout: 10, 1 clicks.
    _ledger(
        store,
        [(p, "sent", "a") for p in people[:10]]
        + [(p, "sent", "b") for p in people[10:20]]
        + [(p, "held_out", None) for p in people[20:]],
    )
    clicks = people[:6] + people[10:12] + people[20:21]
    seed(
        store,
        events=[
            {"customer_id": p, "type": "email_click", "occurred_at": AT + timedelta(days=1), "properties": {}}
            for p in clicks
        ]
        + [{"customer_id": people[9], "type": "email_click", "occurred_at": AT + timedelta(days=3), "properties": {}}],
    )
    with store.engine.connect() as conn:
        [result] = lift(conn, {"promo": ("email_click", timedelta(days=2))})
    data = result.as_json()
    assert data["goal"] == {"event": "email_click", "within": "2d"}
    assert (data["contacted"]["customers"], data["contacted"]["converted"]) == (20, 8)
    assert (data["holdout"]["customers"], data["holdout"]["converted"]) == (10, 1)

    # The lift by hand, on arms of unequal size (20 contacted, 10 held out): 40% against 10%, each
    # arm's Wilson interval over its own size (Newcombe), and relative to the holdout's rate.
    def wilson(p: float, n: int) -> tuple[float, float]:
        z = 1.959964
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return centre - half, centre + half

    (low1, high1), (low0, high0) = wilson(0.4, 20), wilson(0.1, 10)
    low = 0.3 - math.sqrt((0.4 - low1) ** 2 + (high0 - 0.1) ** 2)
    high = 0.3 + math.sqrt((high1 - 0.4) ** 2 + (0.1 - low0) ** 2)
    assert data["lift"]["difference"] == pytest.approx(0.3)
    assert data["lift"]["ci95"] == pytest.approx([low, high])
    assert data["lift"]["relative"] == pytest.approx(3.0)  # +300%: three times the holdout's 10%
    assert data["lift"]["significant"] is (low > 0)
    arms = {v["name"]: v for v in data["variants"]}
    assert (arms["a"]["converted"], arms["b"]["converted"]) == (6, 2)
    # Wilson 95% for 6/10 by hand: centre (0.6 + z²/20)/(1 + z²/10), half z·sqrt(0.024 + z²/400)/(1 + z²/10)
    z = 1.959964
    centre, half = (0.6 + z * z / 20) / (1 + z * z / 10), z * math.sqrt(0.024 + z * z / 400) / (1 + z * z / 10)
    assert arms["a"]["ci95"] == pytest.approx([centre - half, centre + half])
    # 6/10 vs 2/10: +40 pp; Newcombe's interval from the two Wilson intervals reaches below zero,
    # so no winner yet, and a pooled-rate power calculation says how many more customers it needs.
    wilson_b = ((0.2 + z * z / 20) / (1 + z * z / 10), z * math.sqrt(0.016 + z * z / 400) / (1 + z * z / 10))
    low = 0.4 - math.sqrt((0.6 - (centre - half)) ** 2 + ((wilson_b[0] + wilson_b[1]) - 0.2) ** 2)
    assert low < 0
    pooled = 8 / 20
    needed = math.ceil((1.959964 + 0.841621) ** 2 * 2 * pooled * (1 - pooled) / 0.4**2) - 10
    expected = f"no detectable difference yet: need about {needed} more per arm (if the gap of 40.0 pp holds)"
    assert data["verdict"] == expected


def test_the_verdict_says_how_much_more_data_an_unclear_test_needs():
    unclear = verdict({"a": Arm(100, 12), "b": Arm(100, 10)})
    # n = (1.96 + 0.84)² · 2 · .11 · .89 / .02² ≈ 3,843 per arm → about 3,743 more
    assert unclear == "no detectable difference yet: need about 3,743 more per arm (if the gap of 2.0 pp holds)"
    clear = verdict({"a": Arm(5, 5), "b": Arm(5, 0)})  # all against none: a winner even with five each
    assert clear.startswith("a converts better than b: +100.0 pp, 95% interval +")
    assert verdict({"a": Arm(50, 5), "b": Arm(50, 5)}).startswith("no detectable difference yet: the variants")
    assert proportion_interval(Arm(0, 0)) == (None, None)


def _us_customers(store, n: int = 200) -> None:
    seed(
        store,
        customers=[
            {"id": f"c{i:03d}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"} for i in range(n)
        ],
    )


TEMPLATES = {"a.html.j2": "<p>A</p>\n", "b.html.j2": "<p>B</p>\n"}


def test_the_samples_show_every_variant_labelled_and_the_table_shows_the_split(store, tmp_path):
    _us_customers(store)
    ws = write_workspace(tmp_path, [CAMPAIGN], templates=TEMPLATES)
    campaign = ws.campaigns["promo"].campaign
    with store.engine.connect() as conn:
        for render in (1, 2, 3):
            planned = dry_run(conn, ws, [campaign], AT, render=render)
            samples = planned.samples["promo"]
            assert {s.parts["variant"] for s in samples} == {"a", "b"}, (
                render
            )  # each at least once, even with --render 1
            assert len(samples) == max(render, 2)
            for sample in samples:
                assert sample.parts["variant"] == sample.variant and sample.note is None
                assert sample.parts["subject"].startswith(sample.variant.upper())  # rendered as that variant
                assert f"<p>{sample.variant.upper()}</p>" in sample.parts["body"]
                assert sample.variant == variant_for("promo", sample.customer_id, [("a", 50), ("b", 50)])
    page = render_preview(planned, [campaign], "UTC", str(tmp_path))
    labels = re.findall(r'<h3>Customer (c\d+) <span class="variant">variant ([ab])</span>', page)
    assert [(s.customer_id, s.variant) for s in samples] == labels
    split = planned.plans[0].variants
    assert f"variant a</span> {split['a']} targeted (50% weight)" in page
    console = Console(width=80, record=True)
    dry_run_table(planned, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    share = f"{100 * split['a'] / sum(split.values()):.0f}%"
    assert re.search(rf"variant a \({share}\) +{split['a']}\s*$", text, re.M), text


def test_a_variant_nobody_gets_now_is_still_rendered_and_says_so(store, tmp_path):
    _us_customers(store, 20)
    rare = {
        **CAMPAIGN,
        "actions": [{"email": {"variants": [{**v} for v in CAMPAIGN["actions"][0]["email"]["variants"]]}}],
    }
    rare["actions"][0]["email"]["variants"][0]["weight"] = 99.99
    rare["actions"][0]["email"]["variants"][1]["weight"] = 0.01
    ws = write_workspace(tmp_path, [rare], templates=TEMPLATES)
    with store.engine.connect() as conn:
        planned = dry_run(conn, ws, [ws.campaigns["promo"].campaign], AT, render=2)
    assert planned.plans[0].variants == {"a": len(planned.plans[0].targeted)}
    samples = planned.samples["promo"]
    assert [s.variant for s in samples] == ["a", "a", "b"]
    assert samples[2].customer_id == samples[0].customer_id and samples[2].parts["subject"].startswith("B for")
    assert samples[2].note == (
        f"no customer targeted now gets variant b: rendered for {samples[0].customer_id}, who gets another"
    )
