"""What the dry run and the preview say about languages: how many targeted customers read each
one the shop writes in, and which language (and template) each sample is rendered in."""

from __future__ import annotations

import json
import re
from html import unescape

from click.testing import CliRunner

from engine.cli.main import main
from tests.support.helpers import write_workspace
from tests.support.store import seed

AT = "2026-06-01T09:00:00+00:00"
PEOPLE = [  # locale → what the shop (en, zh-CN) serves them in
    ("c1", "zh-CN"),  # zh-CN
    ("c2", "zh-CN"),  # zh-CN
    ("c3", "en-GB"),  # en: English, British dates
    ("c4", "ja-JP"),  # en: the shop writes no Japanese
    ("c5", None),  # en: the default
    ("c6", "zh-TW"),  # en: no zh-TW or zh text
]


def nudge(root, *args):
    return CliRunner().invoke(main, ["--workspace", str(root), *args], catch_exceptions=False)


def shop(root, store):
    campaign = {
        "campaign": "welcome",
        "schedule": "0 9 * * *",
        "audience": {"attribute": "country", "eq": "CN"},
        "actions": [
            {"email": {"template": "welcome.html.j2", "subject": {"default": "Welcome", "zh-CN": "欢迎"}}},
        ],
    }
    templates = {
        "welcome.html.j2": "<p>Hello {{ customer.first_name }}, until {{ at | date('long') }}</p>",
        "welcome.zh-CN.html.j2": "<p>{{ customer | full_name }}，您好，有效期至 {{ at | date('long') }}</p>",
    }
    config = {"store": store.url, "locales": {"default": "en", "supported": ["en", "zh-CN"]}}
    write_workspace(root, [campaign], config=config, templates=templates)
    seed(
        store,
        [
            {"id": cid, "email": f"{cid}@example.com", "email_opt_in": True, "country": "CN", "first_name": "Mei"}
            | {"last_name": "Lin", **({"locale": locale} if locale else {})}
            for cid, locale in PEOPLE
        ],
    )
    return root


def test_the_dry_run_counts_the_targeted_by_the_language_they_read(store, tmp_path):
    root = shop(tmp_path / "ws", store)
    plan = json.loads(nudge(root, "dry-run", "--format", "json", "--at", AT).stdout)["campaigns"][0]
    assert plan["targeted"] == 6 and plan["locales"] == {"en": 4, "zh-CN": 2}
    table = nudge(root, "dry-run", "--at", AT).stdout
    assert "welcome by locale: en 4 · zh-CN 2" in table


def test_samples_are_labelled_with_their_language_and_the_preview_can_force_one(sqlite_store, tmp_path):
    root = shop(tmp_path / "ws", sqlite_store)
    samples = json.loads(nudge(root, "dry-run", "--render", "6", "--format", "json", "--at", AT).stdout)["samples"]
    seen = {s["customer"]: (s["locale"], s["template"], s["subject"]) for s in samples["welcome"]}
    assert seen["c1"] == ("zh-CN", "welcome.zh-CN.html.j2", "欢迎")
    assert seen["c3"] == ("en-GB", "welcome.html.j2", "Welcome")
    assert seen["c4"] == ("en", "welcome.html.j2", "Welcome")
    page_file = tmp_path / "preview.html"
    assert (
        nudge(root, "preview", "--at", AT, "--samples", "3", "--locale", "zh-CN", "-o", str(page_file)).exit_code == 0
    )
    page = unescape(page_file.read_text())
    labels = re.findall(
        r'<h3>Customer (c\d) <span class="locale"[^>]*>([\w-]+)</span> <span class="template">(.*?)</span>', page
    )
    # c3 reads English: forced into Chinese here
    assert labels == [(cid, "zh-CN", "welcome.zh-CN.html.j2") for cid in ("c1", "c2", "c3")]
    assert "Lin Mei，您好，有效期至 2026年6月1日" in page


def test_preview_refuses_a_locale_cldr_does_not_know(sqlite_store, tmp_path):
    root = shop(tmp_path / "ws", sqlite_store)
    result = CliRunner().invoke(main, ["--workspace", str(root), "preview", "--locale", "elvish"])
    assert result.exit_code == 2 and "--locale: error: unknown locale 'elvish'" in result.stderr
