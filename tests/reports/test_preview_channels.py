"""`nudge preview` of a campaign on email, SMS and webhook: each customer's sample shows what they
get on the channels they are reached on — the text as a phone shows it, with its encoding and
segment count, and the webhook's JSON body — opened in a real headless Chromium."""

from __future__ import annotations

import json
import re
from html import unescape

from click.testing import CliRunner

from engine.cli.main import main
from engine.store import open_store
from tests.support.browser import open_page, screenshot
from tests.support.helpers import write_workspace
from tests.support.store import seed

AT = "2026-06-01T09:00:00+00:00"
CAMPAIGN = {
    "campaign": "cart-nudge",
    "schedule": "0 9 * * *",
    "audience": {"attribute": "country", "in": ["CN", "US"]},
    "actions": [
        {"coupon": {"name": "cart", "percent_off": 5, "valid_for": "3d", "prefix": "CART"}},
        {
            "sms": {
                "text": {
                    "default": "{{ customer.first_name }}, your cart is waiting: {{ coupons.cart.code }}",
                    "zh-CN": "{{ customer.first_name }},您的购物车还在等您:券码 {{ coupons.cart.code }}",
                }
            }
        },
        {"email": {"template": "hello.html.j2", "subject": "Your cart, {{ customer.first_name }}"}},
        {"webhook": {"url_env": "CRM_URL", "body": "crm.json.j2"}},
    ],
}
TEMPLATES = {
    "hello.html.j2": "<p>Hi {{ customer.first_name }}, {{ coupons.cart.code }}</p>\n",
    "crm.json.j2": '{"customer": {{ customer.id | tojson }}, "name": {{ customer.first_name | tojson }}}\n',
}


def test_the_preview_shows_each_customers_text_and_webhook_body_on_their_channels(tmp_path):
    root = tmp_path / "ws"
    write_workspace(root, [CAMPAIGN], templates=TEMPLATES)
    store = open_store(f"sqlite:///{root / 'nudge.db'}", create=True)
    seed(
        store,
        customers=[
            {
                "id": "c1",
                "first_name": "小明",
                "country": "CN",
                "locale": "zh-CN",
                "phone": "13800138000",
                "sms_opt_in": True,
                "email": "c1@example.com",
                "email_opt_in": True,
            },
            {"id": "c2", "first_name": "Ann", "country": "US", "phone": "+14155552671", "sms_opt_in": True},
        ],
    )
    store.dispose()
    page_file = tmp_path / "preview.html"
    result = CliRunner().invoke(
        main, ["--workspace", str(root), "preview", "--at", AT, "--samples", "2", "-o", str(page_file)]
    )
    assert result.exit_code == 0, result.output
    page = open_page(page_file)
    assert page.console == [], page.console
    dom = unescape(page.dom)
    first, second = re.split(r"<h3>Customer c2", dom.split("<h3>Customer c1", 1)[1])
    # c1: all three channels; the Chinese text is UCS-2 and ends with the Chinese opt-out hint
    assert "您的购物车还在等您" in first and "回T退订" in first and "UCS-2, 1 segment" in first
    assert 'Subject: <span class="subject">Your cart, 小明' in first
    body = re.search(r'<pre class="text">(\{.*?\})\s*</pre>', first, re.S).group(1)
    assert json.loads(body) == {"customer": "c1", "name": "小明"}
    # c2 has no email consent: no email in her sample, the text in English, GSM-7
    assert "Reached on: sms, webhook" in second and "Subject:" not in second
    assert "Reply STOP to opt out" in second and "GSM-7, 1 segment" in second
    picture = screenshot(page_file, tmp_path / "preview-channels.png", width=1100, height=1400)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
