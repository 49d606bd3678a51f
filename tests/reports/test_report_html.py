"""`nudge report --html -o FILE`: the dashboard's report pages in one file that opens anywhere
(no script, no request, no console message in Chromium), every campaign's section with the
numbers of `--format json`, and charts with a mark per data point."""

from __future__ import annotations

import re
from html import unescape

from click.testing import CliRunner

from engine.cli.main import main
from tests.support.browser import open_page
from tests.support.dashboard import report_json, shop


def test_the_html_report_is_one_self_contained_file_with_every_campaign(workspace_dir, tmp_path):
    root = shop(workspace_dir)
    data = report_json(root)
    target = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["--workspace", str(root), "report", "--html", "-o", str(target)])
    assert result.exit_code == 0, result.output
    html = target.read_text()
    assert "<script" not in html and " src=" not in html and "@import" not in html and "url(" not in html
    assert not re.findall(r"https?://(?!www\.w3\.org/2000/svg)", html)  # the SVG namespace is a name, not a request
    page = open_page(target)
    assert page.console == [], page.console
    sections = re.findall(r'<section class="card campaign" id="campaign-([\w-]+)"', page.dom)
    assert {"winback-ab", "churn-winback", "lapsed-buyers", "birthday"} <= set(sections)
    for points, body in re.findall(r'<svg class="chart"[^>]*data-points="(\d+)"[^>]*>(.*?)</svg>', page.dom, re.S):
        assert body.count('class="mark"') == int(points)
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", page.dom)).split())
    for entry in data["campaigns"]:
        measured = entry["measurement"]
        if measured and measured["contacted"]["customers"]:
            arm = measured["contacted"]
            assert f"{arm['converted']:,} of {arm['customers']:,} converted" in text
    for unit, history in data["audience"].items():
        assert f'data-unit="{unit}" data-occurrences="{len(history)}"' in page.dom


def test_html_and_output_go_together(workspace_dir):
    result = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "report", "--html"])
    assert result.exit_code == 2 and "--html and -o FILE go together" in result.stderr
