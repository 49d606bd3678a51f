"""Recommendations as a marketer meets them: validate catches a misspelt strategy or an `n` out of
range at the template's line; the standard browse-abandonment and lapsed-buyers emails show three
products of the demo's catalogue (image, name, price, link) in the dry run and the preview, and
the demo's orders give `also_bought` something to say."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime

import pytest
from click.testing import CliRunner

from engine.audience.recommend import last_purchased
from engine.cli.main import main
from engine.ingest.demo import build_demo
from engine.messages.shop import Shop
from engine.store.tables import products

AT = "2026-06-01T09:00:00+00:00"


def nudge(workspace_dir, *args):
    return CliRunner().invoke(main, ["--workspace", str(workspace_dir), *args])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            "recommend('also_bougth')",
            "recommend: unknown strategy 'also_bougth': use one of top_in_favourite_category, also_bought, "
            "viewed_not_bought",
        ),
        ("recommend('also_bought', 50)", "recommend: n must be a whole number from 1 to 20, got 50"),
        ("recommend('also_bought', exclude_bought='a year')", "recommend: exclude_bought: invalid duration 'a year'"),
        ("recommend('also_bought', count=3)", "recommend takes (strategy, n=3, exclude_bought=365d) (not count)"),
    ],
)
def test_validate_checks_strategy_names_and_n_at_the_templates_line(workspace_dir, call, message):
    template = workspace_dir / "templates" / "lapsed_buyers.html.j2"
    lines = template.read_text().splitlines()
    at = next(i for i, line in enumerate(lines, 1) if "recommend(" in line)
    lines[at - 1] = "{% for p in " + call + " %}{{ p.name }}{% endfor %}"
    template.write_text("\n".join(lines) + "\n")
    result = nudge(workspace_dir, "validate")
    assert result.exit_code == 2
    assert f"{template}:{at}: error: {message}" in result.stderr


def test_a_strategy_chosen_at_run_time_is_checked_when_it_renders(workspace_dir):
    template = workspace_dir / "templates" / "lapsed_buyers.html.j2"
    text = template.read_text().replace('recommend("also_bought", 3)', "recommend(customer.first_name, 3)")
    template.write_text(text)
    result = nudge(workspace_dir, "validate")
    assert result.exit_code == 2
    assert "recommend: unknown strategy 'Alex': use one of top_in_favourite_category" in result.stderr


def cards(html: str) -> list[dict[str, str]]:
    """The product cards of a rendered email: link, image, name and price of each."""
    found = []
    for cell in re.findall(r'<td class="product".*?</td>', html, re.S):
        found.append(
            {
                "link": re.search(r'<a href="([^"]+)"', cell).group(1),
                "image": re.search(r'<img src="([^"]+)"', cell).group(1),
                "name": re.search(r"<span[^>]*>([^<]+)</span>", cell).group(1),
                "price": re.search(r"<strong[^>]*>([^<]+)</strong>", cell).group(1),
            }
        )
    return found


def test_the_standard_emails_show_three_products_of_the_catalogue(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "400", "--at", AT).exit_code == 0
    result = nudge(
        workspace_dir, "dry-run", "lapsed-buyers", "browse-abandonment", "--at", AT, "--render", "3", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    samples = json.loads(result.stdout)["samples"]
    for campaign in ("lapsed-buyers", "browse-abandonment"):
        shown = [cards(sample["body"]) for sample in samples[campaign]]
        assert any(len(found) == 3 for found in shown), campaign
        for card in (card for found in shown for card in found):
            assert card["link"].startswith("https://shop.example/products/demo-")
            assert card["image"].startswith("https://shop.example/images/demo-")
            assert re.fullmatch(r"(US\$|\$)\d[\d,]*\.\d\d", card["price"]), card["price"]
    for sample in samples["lapsed-buyers"]:  # the heading in the customer's language, in both parts
        heading = "为您推荐" if sample["locale"] == "zh-CN" else "Picked for you"
        assert heading in sample["body"] and heading in sample["text"]


def test_the_demo_orders_give_also_bought_something_to_say(store):
    at = datetime.fromisoformat(AT)
    build_demo(store, at, size=600)
    ids = [f"demo-{i:05d}" for i in range(1, 601)]
    with store.engine.connect() as conn:
        catalogue = {p.id: p for p in conn.execute(products.select())}
        last = last_purchased(conn, ids, at)
        batch = Shop(at).batch(conn, ids)
        picks = {cid: batch.recommend(cid, "also_bought", 3, None) for cid in ids}
        favourite = {cid: batch.recommend(cid, "top_in_favourite_category", 3, None) for cid in ids}
    assert 200 <= len(catalogue) <= 400
    categories = Counter(p.category for p in catalogue.values())
    assert set(categories) == {"shoes", "knitwear", "outerwear", "bags", "accessories"}
    assert any(not p.in_stock for p in catalogue.values())
    buyers = [cid for cid, found in picks.items() if found]
    assert len(buyers) > 200 and sum(len(picks[cid]) == 3 for cid in buyers) > 0.9 * len(buyers)
    assert sum(1 for found in favourite.values() if found) > 200
    # Co-purchase structure: the buyers of a product mostly also bought its line, so the first
    # recommendation is of the line of the customer's last purchase far more often than chance.
    line = {pid: p.attributes["line"] for pid, p in catalogue.items()}
    same = [line[picks[cid][0]["id"]] == line[last[cid]] for cid in buyers]
    assert sum(same) / len(same) > 0.5
