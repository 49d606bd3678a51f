"""The dashboard's door: every /ui/ path answers 401 without the password, with a wrong one, and
with the ingestion write key; `nudge serve` refuses to start it without its password. And its
pages, on both stores, carry `nudge report --format json`'s numbers."""

from __future__ import annotations

import re
from html import unescape

import pytest
from click.testing import CliRunner
from werkzeug.test import Client

from engine.cli.main import main
from engine.web.serve import App
from tests.support.dashboard import PASSWORD, WRITE_KEY, basic, make_app, report_json, shop
from tests.support.helpers import email_campaign, write_workspace

PATHS = (
    "/ui",
    "/ui/",
    "/ui/campaigns/promo",
    "/ui/campaigns/promo/preview",
    "/ui/customers?q=c1",
    "/ui/customer?id=c1",
    "/ui/deliveries?status=sent",
    "/ui/no/such/page",
)


@pytest.fixture
def client(tmp_path, sqlite_store):
    config = {"store": sqlite_store.url, "ui": {"password_env": "NUDGE_TEST_UI_PASSWORD"}}
    root = write_workspace(tmp_path / "ws", [email_campaign("promo")], config=config).root
    return Client(make_app(root))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "authorization",
    [None, basic("analyst", "wrong"), basic(WRITE_KEY, ""), basic("analyst", WRITE_KEY), "Bearer " + PASSWORD],
    ids=["none", "wrong", "write-key-as-user", "write-key-as-password", "not-basic"],
)
def test_every_dashboard_path_is_401_without_the_password(client, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for method in ("GET", "POST", "HEAD"):
        answer = client.open(path, method=method, headers=headers)
        assert answer.status_code == 401, (method, answer.status_code)
        assert answer.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert "promo" not in answer.get_data(as_text=True)


@pytest.mark.parametrize("path", PATHS)
def test_the_password_opens_every_page_never_cached_nor_allowed_to_load_anything(client, path):
    answer = client.get(path, headers={"Authorization": basic("anyone", PASSWORD)})
    assert answer.status_code == {"/ui": 301, "/ui/customer?id=c1": 404, "/ui/no/such/page": 404}.get(path, 200)
    assert answer.headers["Cache-Control"] == "no-store"
    if answer.status_code != 301:
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "http" not in policy
    assert client.post(path, headers={"Authorization": basic("x", PASSWORD)}).status_code in (405, 301)


def test_without_ui_in_config_there_is_no_dashboard(sqlite_store):
    answer = Client(App(sqlite_store, b"s", None, lambda: None)).get("/ui/")
    assert answer.status_code == 404 and "ui" in answer.json["error"]


def test_serve_refuses_to_start_the_dashboard_without_its_password_or_with_the_write_key(tmp_path, sqlite_store):
    config = {
        "store": sqlite_store.url,
        "ui": {"password_env": "NUDGE_TEST_UI_PASSWORD"},
        "ingest": {"write_key_env": "NUDGE_TEST_WRITE_KEY"},
    }
    root = write_workspace(tmp_path / "ws", [email_campaign("promo")], config=config).root
    base = {"NUDGE_SECRET": "s", "NUDGE_TEST_WRITE_KEY": WRITE_KEY}
    for extra, said in (
        ({"NUDGE_TEST_UI_PASSWORD": None}, "NUDGE_TEST_UI_PASSWORD must be set"),
        ({"NUDGE_TEST_UI_PASSWORD": ""}, "NUDGE_TEST_UI_PASSWORD must be set"),
        ({"NUDGE_TEST_UI_PASSWORD": WRITE_KEY}, "must differ from the ingestion write key"),
    ):
        # A host no socket can bind: were the dashboard let through, serve fails there instead of serving.
        args = ["--workspace", str(root), "serve", "--host", "256.0.0.1"]
        result = CliRunner().invoke(main, args, env={**base, **extra})
        assert result.exit_code == 1 and said in result.stderr, result.output


def _cells(html: str, unit: str, channel: str) -> dict[str, str]:
    row = re.search(rf'<tr data-unit="{re.escape(unit)}" data-channel="{channel}">(.*?)</tr>', html, re.S).group(1)
    return {c: unescape(v).strip() for c, v in re.findall(r'data-column="(\w+)">([^<]*)<', row)}


def test_the_campaign_page_carries_the_report_numbers_on_either_store(tmp_path, store, workspace_dir):
    root = shop(workspace_dir, store.url)
    data = report_json(root)
    client = Client(make_app(root))
    for entry in data["campaigns"]:
        name = entry["campaign"].split("/")[0]
        html = client.get(f"/ui/campaigns/{name}?range=all", headers={"Authorization": basic("a", PASSWORD)}).text
        for channel, by in entry["channels"].items():
            cells = _cells(html, entry["campaign"], channel)
            assert cells["sent"] == f"{by['sent']:,}" and cells["held_out"] == f"{by['held_out']:,}"
            assert cells["failed"] == f"{by['failed']:,}" and cells["skipped"] == f"{by['skipped']:,}"
        history = data["audience"][entry["campaign"]]
        chart = re.search(rf'data-unit="{re.escape(entry["campaign"])}" data-occurrences="(\d+)"', html)
        assert int(chart.group(1)) == len(history)
        measured = entry["measurement"]
        if measured and measured["contacted"]["customers"]:
            contacted = measured["contacted"]
            assert f"{contacted['converted']:,} of {contacted['customers']:,} converted" in unescape(html)
