"""The dashboard in a real browser (headless Chromium over DevTools): every page loads without a
console message and without a request anywhere but the server, every chart has one mark per data
point, and the numbers on the pages are `nudge report --format json`'s.

NUDGE_UPDATE_SCREENSHOTS=1 copies the campaign page's screenshot to docs/dashboard.png."""

from __future__ import annotations

import os
import shutil
from urllib.parse import quote

import pytest

from engine.reports.words import arm_words, difference_words, percent
from tests.support.dashboard import RUN_DAYS, WatchedTab, report_json, served, shop
from tests.support.store import ROOT

CHARTS = """JSON.stringify([...document.querySelectorAll('svg.chart, svg.spark')].map(svg => ({
  kind: svg.dataset.chart, points: Number(svg.dataset.points),
  marks: svg.classList.contains('spark')
    ? svg.querySelector('polyline').getAttribute('points').trim().split(/\\s+/).length
    : svg.querySelectorAll('.mark').length,
  unit: (svg.closest('[data-unit]') || svg.closest('[data-campaign]') || {dataset: {}}).dataset.unit
    || (svg.closest('[data-campaign]') || {dataset: {}}).dataset.campaign,
  channel: (svg.closest('[data-channel]') || {dataset: {}}).dataset.channel,
  counts: [...svg.querySelectorAll('.mark')].map(m => Number(m.dataset.count || 0)),
})))"""
CELLS = """JSON.stringify([...document.querySelectorAll('%s')].map(row => ({
  ...row.dataset, cells: Object.fromEntries([...row.querySelectorAll('[data-column]')]
    .map(td => [td.dataset.column, td.textContent.trim()])) })))"""
MEASURED = """JSON.stringify([...document.querySelectorAll('.measurement')].map(m => ({unit: m.dataset.unit,
  contacted: m.querySelector('dd.contacted').textContent.replace(/\\s+/g, ' ').trim(),
  difference: m.querySelector('dd.difference').textContent.replace(/\\s+/g, ' ').trim()})))"""
TEXTS = "JSON.stringify([...document.querySelectorAll('%s')].map(e => e.textContent.replace(/\\s+/g, ' ').trim()))"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("dashboard") / "ws"
    shutil.copytree(ROOT / "rules", root / "rules")
    shutil.copytree(ROOT / "templates", root / "templates")
    (root / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    shop(root)
    with served(root) as base, WatchedTab(width=1280, height=900) as tab:
        yield root, base, tab, report_json(root)


def look(tab: WatchedTab, base: str, path: str) -> None:
    requests, said = tab.visit(base + path)
    assert said == [], f"{path}: {said}"
    assert requests and all(url.startswith(base + "/") or url.startswith("data:") for url in requests), requests


def evaluate(tab: WatchedTab, script: str):
    import json

    return json.loads(tab.evaluate(script))


ROWS = """JSON.stringify([...document.querySelectorAll('tr[data-campaign]')].map(row => {
  const spark = row.querySelector('svg.spark');
  return {campaign: row.dataset.campaign, targeted: row.querySelector('td.targeted').textContent.trim(),
    points: spark ? Number(spark.dataset.points) : 0,
    vertices: spark ? spark.querySelector('polyline').getAttribute('points').trim().split(/\\s+/).length : 0};
}))"""


def test_the_campaigns_page_lists_each_campaign_with_its_targeted_line(site, tmp_path):
    _root, base, tab, data = site
    look(tab, base, "/ui/")
    rows = evaluate(tab, ROWS)
    assert {"winback-ab", "lapsed-buyers", "churn-winback", "birthday"} <= {r["campaign"] for r in rows}
    for row in rows:
        entry = f"{row['campaign']}/offer" if row["campaign"] == "churn-winback" else row["campaign"]
        history = data["audience"].get(entry, [])
        assert row["points"] == row["vertices"] == min(30, len(history))
        assert row["targeted"] == (f"{history[-1]['targeted']:,}" if history else "–")
    assert any(row["points"] == len(RUN_DAYS) for row in rows)
    tab.whole_page(tmp_path / "campaigns.png")


@pytest.mark.parametrize("name", ["winback-ab", "churn-winback", "lapsed-buyers", "birthday-text"])
def test_a_campaign_page_draws_every_point_and_shows_the_report_numbers(site, name, tmp_path):
    _root, base, tab, data = site
    look(tab, base, f"/ui/campaigns/{name}?range=all")
    counts = {c["campaign"]: c for c in data["campaigns"]}
    units = [u for u in data["audience"] if u == name or u.startswith(name + "/")]
    charts = evaluate(tab, CHARTS)
    assert charts and all(c["points"] == c["marks"] for c in charts), charts
    history = [c for c in charts if c["kind"] == "history"]
    assert {c["unit"]: c["points"] for c in history} == {u: len(data["audience"][u]) for u in units}
    for unit in units:  # the last occurrence's funnel, cell by cell
        [shown] = evaluate(tab, CELLS % f'.history[data-unit="{unit}"] table.last-occurrence tr:has(td)')
        last = data["audience"][unit][-1]
        expected = {"matched": last["matched"], "targeted": last["targeted"], **last["excluded"]}
        assert shown["cells"] == {k: f"{v:,}" for k, v in expected.items()}
    per_day = [c for c in charts if c["kind"] == "per-day"]
    for chart in per_day:  # all time: the bars add up to the ledger's rows of that channel
        ledger = sum(sum(counts[u]["channels"].get(chart["channel"], {}).values()) for u in units if u in counts)
        assert sum(chart["counts"]) == ledger > 0
    table = evaluate(tab, CELLS % "table.counts tr[data-unit]")
    for row in table:
        by = counts[row["unit"]]["channels"][row["channel"]]
        for column, text in row["cells"].items():
            if column == "targeted":
                assert text in ("", f"{counts[row['unit']]['targeted']:,}")
            else:
                assert text == f"{by[column] + (by['sending'] if column == 'unknown' else 0):,}"
    assert len(table) == sum(len(counts[u]["channels"]) for u in units if u in counts)
    _measurements(tab, data, units, charts)


def _measurements(tab, data, units, charts) -> None:
    measured = {c["campaign"]: c["measurement"] for c in data["campaigns"] if c["measurement"]}
    blocks = {b["unit"]: b for b in evaluate(tab, MEASURED)}
    shown = [u for u in units if u in measured]
    assert set(blocks) == set(shown)
    for u in shown:
        assert blocks[u]["contacted"] == " ".join(arm_words(measured[u]["contacted"]).split())
        assert blocks[u]["difference"] == difference_words(measured[u]["lift"])
    conversion = {c["unit"]: c["points"] for c in charts if c["kind"] == "conversion"}
    assert conversion == {
        u: 1 + bool(measured[u]["holdout"]["customers"]) + len(measured[u]["variants"]) for u in shown
    }
    assert len([c for c in charts if c["kind"] == "lift"]) == sum(1 for u in shown if measured[u]["lift"])
    for u in shown:
        variants = evaluate(tab, TEXTS % f'.measurement[data-unit="{u}"] .variant')
        assert variants == [
            f"{v['name']} {percent(v['conversion'])} · {v['converted']:,} of {v['customers']:,} converted "
            f"95% interval {percent(v['ci95'][0])} … {percent(v['ci95'][1])}"
            for v in measured[u]["variants"]
        ]
        if measured[u]["verdict"]:
            assert evaluate(tab, TEXTS % ".variants-verdict") == [measured[u]["verdict"]]


def test_the_journey_funnel_and_the_screenshot(site, tmp_path):
    _root, base, tab, data = site
    look(tab, base, "/ui/campaigns/churn-winback?range=all")
    [journey] = data["journeys"]
    [funnel] = [c for c in evaluate(tab, CHARTS) if c["kind"] == "funnel"]
    assert funnel["points"] == funnel["marks"] == 1 + len(journey["steps"]) + 2 + bool(journey["exited"]["event"])
    reached = evaluate(tab, TEXTS % "table.funnel tr[data-step] td:nth-child(2)")
    assert reached == [f"{s['reached']:,}" for s in journey["steps"]]
    look(tab, base, "/ui/campaigns/winback-ab?range=all")
    picture = tab.whole_page(tmp_path / "campaign.png")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 50_000
    if os.environ.get("NUDGE_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(picture, ROOT / "docs" / "dashboard.png")


def test_preview_search_timeline_and_deliveries_pages_load_clean(site):
    _root, base, tab, data = site
    look(tab, base, "/ui/campaigns/winback-ab/preview")
    assert tab.evaluate("document.querySelectorAll('iframe.email').length") > 0
    look(tab, base, "/ui/customers?q=demo-0001")
    found = evaluate(tab, TEXTS % "tr[data-customer] td:first-child")
    assert found == [f"demo-0001{i}" for i in range(10)]
    [someone] = [c for c in data["campaigns"] if c["campaign"] == "winback-ab"]
    look(tab, base, "/ui/deliveries?campaign=winback-ab&status=sent&since=all")
    rows = evaluate(tab, TEXTS % "tr[data-delivery] td:nth-child(4)")
    assert rows == ["sent"] * min(someone["sent"], 500)
    customer = evaluate(tab, TEXTS % "tr[data-delivery] td:nth-child(3)")[0]
    look(tab, base, f"/ui/customer?id={quote(customer)}")
    assert "winback-ab" in " ".join(evaluate(tab, TEXTS % "table td"))
