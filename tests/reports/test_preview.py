"""`nudge preview` on the demo workspace, opened in a real headless Chromium."""

from __future__ import annotations

import re
from html import unescape

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from tests.support.browser import open_page, screenshot

AT = "2026-06-01T09:00:00+00:00"


def nudge(workspace_dir, *args):
    return CliRunner().invoke(main, ["--workspace", str(workspace_dir), *args])


@pytest.fixture
def demo(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "600", "--at", AT).exit_code == 0
    return workspace_dir


def test_the_preview_page_shows_each_campaign_and_renders_every_email_in_a_browser(demo, tmp_path):
    page_file = tmp_path / "preview.html"
    result = nudge(demo, "preview", "--at", AT, "--samples", "2", "-o", str(page_file))
    assert result.exit_code == 0, result.output
    html = page_file.read_text()
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://cdn" not in html  # self-contained
    page = open_page(page_file)
    assert page.console == [], page.console  # no script error, no console message
    frames = re.findall(r"<iframe [^>]*>", page.dom)
    # birthday, churn-winback/offer, lapsed-buyers, browse-abandonment email; low-satisfaction is a
    # task, and nobody is due for the journey's later steps yet
    email_campaigns = 4
    assert len(frames) == email_campaigns * 2 * 2  # two samples, desktop and phone
    assert all('data-rendered="yes"' in f for f in frames)
    assert all(int(re.search(r'data-text-length="(\d+)"', f).group(1)) > 50 for f in frames)
    assert f'data-frames-rendered="{len(frames)}"' in page.dom
    birthday = unescape(re.search(r'<section class="campaign" id="birthday".*?</section>', page.dom, re.S).group(0))
    assert "Happy birthday" in birthday and "BDAY-PREVIEW" in birthday and "Subject:" in birthday
    tasks = re.search(r'<section class="campaign" id="low-satisfaction".*?</section>', page.dom, re.S).group(0)
    assert "Task for staff" in tasks
    picture = screenshot(page_file, tmp_path / "preview.png")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 20_000


def test_render_failures_are_listed_on_the_page_and_exit_1(demo, tmp_path):
    template = demo / "templates" / "birthday.html.j2"
    template.write_text(template.read_text().replace('customer.first_name or "friend"', "1 / 0"))
    page_file = tmp_path / "preview.html"
    result = nudge(demo, "preview", "birthday", "--at", AT, "-o", str(page_file))
    assert result.exit_code == 1
    assert "error: birthday: " in result.stderr and "sample messages failed to render" in result.stderr
    html = unescape(page_file.read_text())
    assert "samples did not render" in html and "ZeroDivisionError: division by zero" in html
