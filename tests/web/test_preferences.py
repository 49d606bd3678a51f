"""The preference centre on `nudge serve`: the page a customer reaches from the unsubscribe link in
every email, its Save and "Unsubscribe from everything", one-click from a mail client, and the
consent log each of them leaves. Both databases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from werkzeug.test import Client

from engine.messages.unsubscribe import sign
from engine.rules.channels_config import Topic
from engine.store.consent import log_for
from engine.store.tables import customers, subscriptions, suppressions
from engine.web.preferences import TopicBook
from engine.web.serve import App
from tests.support.store import seed

SECRET = b"test-secret-for-preferences"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
BOOK = TopicBook(
    topics={
        "promotions": Topic(label="Offers and coupons"),
        "newsletter": Topic(label={"en": "News from the shop", "zh-CN": "店铺新闻"}),
        "orders": Topic(label={"en": "Orders and account", "zh-CN": "订单和账户"}, required=True),
    },
    campaigns={"promo": "promotions", "weekly": "newsletter"},
)


class Boxes(HTMLParser):
    """The page's checkboxes as a browser shows them: value → (checked, disabled), and its text."""

    def __init__(self, html: str):
        super().__init__()
        self.boxes: dict[str, tuple[bool, bool]] = {}
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if tag == "input" and found.get("type") == "checkbox":
            self.boxes[found["value"]] = ("checked" in found, "disabled" in found)

    def handle_data(self, data):
        self.text.append(data)

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


@pytest.fixture
def shop(store):
    seed(
        store,
        customers=[
            {"id": "ann", "email": "ann@example.com", "email_opt_in": True, "locale": "en-US"},
            {"id": "li", "email": "li.wei@example.cn", "email_opt_in": True, "locale": "zh-CN"},
        ],
    )
    return store


def client(store, book: TopicBook = BOOK) -> Client:
    return Client(App(store, SECRET, None, lambda: NOW, preferences=book))


def link(customer: str = "ann", campaign: str = "promo", at: datetime = NOW) -> str:
    address = {"ann": "ann@example.com", "li": "li.wei@example.cn"}[customer]
    return sign(SECRET, customer, address, campaign, at)


def choices(store, customer: str = "ann") -> dict[str, bool]:
    with store.engine.connect() as conn:
        query = sa.select(subscriptions.c.topic, subscriptions.c.subscribed).where(
            subscriptions.c.customer_id == customer
        )
        return dict(conn.execute(query).all())


def logged(store, customer: str = "ann") -> list[tuple]:
    """The consent log since the customer was imported (the import logs their opt-in)."""
    with store.engine.connect() as conn:
        entries = [e for e in log_for(conn, customer) if not e["source"].startswith("import")]
    return [(e["change"], e["topic"], e["old_value"], e["new_value"], e["source"]) for e in entries]


def unsubscribed(store, customer: str = "ann") -> tuple[datetime | None, list[str]]:
    with store.engine.connect() as conn:
        at = conn.execute(sa.select(customers.c.unsubscribed_at).where(customers.c.id == customer)).scalar()
        return at, list(conn.execute(sa.select(suppressions.c.email)).scalars())


def test_the_page_lists_the_shops_topics_with_the_customers_choices(shop):
    with shop.engine.begin() as conn:
        conn.execute(
            sa.insert(subscriptions).values(
                customer_id="ann", topic="newsletter", subscribed=False, updated_at=NOW.replace(tzinfo=None)
            )
        )
    answer = client(shop).get(f"/preferences/{link()}")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    page = Boxes(answer.get_data(as_text=True))
    assert page.boxes == {"promotions": (True, False), "newsletter": (False, False), "orders": (True, True)}
    for label in ("Offers and coupons", "News from the shop", "Orders and account", "Always sent"):
        assert label in page.words
    assert "Save my choices" in page.words and "Unsubscribe from everything" in page.words
    # The address, masked: the link may be forwarded, and the page is no place to read it.
    assert "a***@example.com" in page.words and "ann@example.com" not in answer.get_data(as_text=True)


def test_unticking_a_topic_and_saving_is_stored_and_logged_once(shop):
    web, token = client(shop), link()
    saved = web.post(f"/preferences/{token}", data={"action": "save", "topic": ["promotions"]})
    assert saved.status_code == 200
    page = Boxes(saved.get_data(as_text=True))
    assert "Your choices are saved." in page.words
    assert page.boxes["newsletter"] == (False, False) and page.boxes["promotions"] == (True, False)
    assert choices(shop) == {"newsletter": False}  # a topic still on needs no row
    assert logged(shop) == [("topic", "newsletter", "true", "false", "preference page")]
    # Saving the same choices again changes nothing and logs nothing; a forged required box is ignored.
    web.post(f"/preferences/{token}", data={"action": "save", "topic": ["promotions", "nonsense"]})
    assert choices(shop) == {"newsletter": False} and len(logged(shop)) == 1
    assert unsubscribed(shop) == (None, [])


def test_unsubscribe_from_everything_and_coming_back(shop):
    web, token = client(shop), link()
    done = web.post(f"/preferences/{token}", data={"action": "everything", "topic": ["promotions"]})
    page = Boxes(done.get_data(as_text=True))
    assert "You are unsubscribed from all our marketing email." in page.words
    assert page.boxes == {"promotions": (False, False), "newsletter": (False, False), "orders": (True, True)}
    assert choices(shop) == {"promotions": False, "newsletter": False}
    at, suppressed = unsubscribed(shop)
    assert at is not None and suppressed == ["ann@example.com"]
    assert [(c, t, s) for c, t, _, _, s in logged(shop)] == [
        ("topic", "promotions", "preference page"),
        ("topic", "newsletter", "preference page"),
        ("unsubscribe", None, "preference page"),
        ("suppression", None, "preference page"),
    ]
    # Ticking a topic again is the customer asking back in: the unsubscribe is lifted, and logged.
    back = Boxes(web.post(f"/preferences/{token}", data={"action": "save", "topic": ["newsletter"]}).get_data(True))
    assert back.boxes["newsletter"] == (True, False) and back.boxes["promotions"] == (False, False)
    assert unsubscribed(shop) == (None, [])
    assert [(c, t) for c, t, _, _, _ in logged(shop)[4:]] == [("topic", "newsletter"), ("unsubscribe", None)] + [
        ("suppression", None)
    ]


def test_one_click_leaves_only_the_campaigns_topic(shop):
    web = client(shop)
    answer = web.post(f"/unsubscribe/{link(campaign='weekly')}", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200 and "News from the shop" in answer.get_data(as_text=True)
    assert choices(shop) == {"newsletter": False}
    assert unsubscribed(shop) == (None, [])  # still gets offers and coupons
    assert logged(shop) == [("topic", "newsletter", "true", "false", "one-click")]
    again = web.post(f"/unsubscribe/{link(campaign='weekly')}", data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200 and len(logged(shop)) == 1  # idempotent


@pytest.mark.parametrize(
    ("book", "campaign"),
    [(TopicBook(), "promo"), (BOOK, "a-campaign-deleted-since")],
    ids=["no topics configured", "unknown campaign"],
)
def test_one_click_leaves_everything_when_the_topic_is_not_one_to_leave(shop, book, campaign):
    client(shop, book).post(f"/unsubscribe/{link(campaign=campaign)}", data={"List-Unsubscribe": "One-Click"})
    at, suppressed = unsubscribed(shop)
    assert at is not None and suppressed == ["ann@example.com"]
    assert {s for *_, s in logged(shop)} == {"one-click"}
    assert ("unsubscribe", None) in [(c, t) for c, t, *_ in logged(shop)]


def test_forged_garbled_and_expired_links_are_refused_in_plain_words(shop):
    web, token = client(shop), link()
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    other_shop = sign(b"another-shop-secret", "ann", "ann@example.com", "promo", NOW)
    expired = link(at=NOW - timedelta(days=500))
    for bad in (flipped, token[:-3], other_shop, "garbage", expired):
        for method in ("GET", "POST"):
            answer = web.open(f"/preferences/{bad}", method=method, data={"action": "everything"})
            assert answer.status_code == 400 and "This link is not valid" in answer.get_data(as_text=True)
    assert choices(shop) == {} and logged(shop) == [] and unsubscribed(shop) == (None, [])


def test_a_chinese_customer_reads_the_page_in_chinese(shop):
    page = client(shop).get(f"/preferences/{link('li')}").get_data(as_text=True)
    words = Boxes(page).words
    assert '<html lang="zh-CN">' in page
    for text in ("邮件偏好设置", "保存我的选择", "退订所有邮件", "店铺新闻", "订单和账户", "l***@example.cn"):
        assert text in words
    assert "Save" not in words
    bad = client(shop).get("/preferences/garbage", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert bad.status_code == 400 and "此链接无效" in bad.get_data(as_text=True)


def test_topic_labels_are_escaped(shop):
    book = TopicBook(topics={"deals": Topic(label='<script>alert("x")</script> & more')})
    page = client(shop, book).get(f"/preferences/{link()}").get_data(as_text=True)
    assert "<script>" not in page and "&lt;script&gt;" in page and "&amp; more" in page
