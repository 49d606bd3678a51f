"""The preference centre and the double opt-in confirmation on `nudge serve`, in the customer's
language (engine.web.pages). Plain HTML forms: no JavaScript, nothing to load from elsewhere.

GET  /preferences/TOKEN   the shop's topics as checkboxes with the customer's current choices
                          (required ones checked and disabled), Save, Unsubscribe from everything
POST /preferences/TOKEN   action=save with topic=NAME per ticked box, or action=everything
POST /unsubscribe/TOKEN   one-click (serve.py routes it here): leaves the campaign's topic only
GET  /confirm/TOKEN       a Confirm button; a GET alone changes nothing (mail scanners open links)
POST /confirm/TOKEN       the address is confirmed (email_confirmed_at), logged

The token names the customer, the address the email went to and its campaign; anyone holding the
link may act for that customer, as with any unsubscribe link, so there is no other check (CSRF
protection would add nothing a forged request could not read from the same URL)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path

from werkzeug.wrappers import Request, Response

from engine.core.channels import ConsentSource
from engine.core.errors import TokenError
from engine.delivery.confirmations import CONFIRM_CAMPAIGN
from engine.delivery.preferences import (
    Reader,
    confirm_address,
    current_choices,
    find_customer,
    leave_everything,
    leave_topic,
    optional_topics,
    save_choices,
)
from engine.delivery.suppressions import suppress
from engine.messages.unsubscribe import Unsubscribe, verify
from engine.rules.campaign import Campaign
from engine.rules.channels_config import Topic
from engine.rules.config import Config
from engine.rules.journey import expand
from engine.store import Store
from engine.web.pages import EN, ZH_CN, language, mask, message, page, words
from engine.workspace.loader import load_rules

log = logging.getLogger("nudge.serve")


@dataclass(frozen=True)
class TopicBook:
    """config.yaml's topics, and the topic of each campaign (journey steps included) by name: what a
    one-click unsubscribe from one campaign's email leaves."""

    topics: Mapping[str, Topic] = field(default_factory=dict)
    campaigns: Mapping[str, str] = field(default_factory=dict)


def topic_book(config: Config, campaigns: Iterable[Campaign]) -> TopicBook:
    found = {}
    for campaign in campaigns:
        topic = campaign.topic or config.default_topic
        for unit in expand(campaign):
            found[unit.campaign] = topic
    return TopicBook(dict(config.topics), found)


def workspace_topics(root: Path, config: Config) -> TopicBook:
    """The topic book of a workspace's rule files as they are now. A file that does not load is left
    out: a one-click unsubscribe from its email then leaves every topic, never too little."""
    rules = load_rules(root, config.limits.exclusive)
    return topic_book(config, (loaded.campaign for loaded in rules.campaigns.values()))


def asked_language(request: Request) -> str:
    """For a page about no known customer (a bad link): the browser's language."""
    return ZH_CN if request.accept_languages.best_match([EN, ZH_CN, "zh"]) in (ZH_CN, "zh") else EN


@dataclass
class PreferenceCentre:
    store: Store
    secret: bytes
    clock: Callable[[], datetime]
    book: TopicBook = field(default_factory=TopicBook)

    def _verified(self, request: Request, token: str) -> Unsubscribe | Response:
        try:
            return verify(self.secret, token, self.clock())
        except TokenError:
            return message(asked_language(request), "bad_title", "bad", status=400)

    # --- the preference page -------------------------------------------------------------------

    def preferences(self, request: Request, token: str) -> Response:
        who = self._verified(request, token)
        if isinstance(who, Response):
            return who
        with self.store.engine.connect() as conn:
            reader = find_customer(conn, who.customer_id)
        if reader is None:
            return message(asked_language(request), "gone_title", "gone", status=404)
        lang = language(reader.locale)
        notice = None
        if request.method == "POST":
            action = request.form.get("action")
            if action not in ("save", "everything"):
                return message(lang, "bad_title", "bad", status=400)
            notice = self._change(reader, who, action, request.form.getlist("topic"))
            with self.store.engine.connect() as conn:
                reader = find_customer(conn, who.customer_id) or reader
        with self.store.engine.connect() as conn:
            choices = current_choices(conn, self.book.topics, reader)
        if notice is None and reader.unsubscribed_at is not None:
            notice = "unsubscribed"
        return page(lang, "title", self._form(lang, who.email, choices, notice))

    def _change(self, reader: Reader, who: Unsubscribe, action: str, ticked: list[str]) -> str:
        now = self.clock()
        source = ConsentSource.PREFERENCE_PAGE
        with self.store.engine.begin() as conn:
            if action == "everything":
                leave_everything(conn, self.book.topics, reader.id, who.email, who.campaign, source, now)
                log.info("preference page: a customer unsubscribed from everything")
                return "left_all"
            changed = save_choices(conn, self.book.topics, reader, ticked, source, now)
        log.info("preference page: %d choices changed", len(changed))
        return "saved"

    def _form(self, lang: str, address: str, choices: Mapping[str, bool], notice: str | None) -> str:
        leavable = set(optional_topics(self.book.topics))
        rows = []
        for name, on in choices.items():
            topic = self.book.topics.get(name)
            label = escape(topic.label_for(lang, EN)) if topic is not None else words(lang, "implicit")
            required = name not in leavable
            rows.append(
                f'<label class="topic"><input type="checkbox" name="topic" value="{escape(name)}"'
                + (" checked" if on else "")
                + (" disabled" if required else "")
                + f"> {label}"
                + (f"<small>{words(lang, 'required')}</small>" if required else "")
                + "</label>"
            )
        shown = f'<p class="notice" role="status">{words(lang, notice)}</p>' if notice else ""
        return (
            f"{shown}<p>{words(lang, 'intro', address=mask(address))}</p>"
            f'<form method="post">{"".join(rows)}<div class="actions">'
            f'<button class="primary" type="submit" name="action" value="save">{words(lang, "save")}</button>'
            f'<button class="secondary" type="submit" name="action" value="everything">'
            f"{words(lang, 'everything')}</button></div></form>"
        )

    # --- one-click (RFC 8058), from /unsubscribe/TOKEN ------------------------------------------

    def one_click(self, who: Unsubscribe) -> Response:
        """Leave the campaign's topic only; everything when there are no topics to choose from (the
        implicit one), or the campaign's topic is unknown here (a system message, a deleted rule
        file) or required: an unsubscribe never does less than the customer asked."""
        now = self.clock()
        topic = self.book.campaigns.get(who.campaign)
        one_topic = topic in self.book.topics and topic in optional_topics(self.book.topics)
        with self.store.engine.begin() as conn:
            reader = find_customer(conn, who.customer_id)
            if reader is None:  # erased since: the address still never gets email again
                suppress(conn, [who.email], "unsubscribe", who.campaign, now)
                return message(EN, "title", "left_all")
            if one_topic and topic is not None:
                leave_topic(conn, self.book.topics, reader.id, topic, ConsentSource.ONE_CLICK, now)
            else:
                leave_everything(
                    conn, self.book.topics, reader.id, who.email, who.campaign, ConsentSource.ONE_CLICK, now
                )
        log.info("one-click unsubscribe from campaign %s (%s)", who.campaign, topic if one_topic else "everything")
        lang = language(reader.locale)
        if not one_topic or topic is None:
            return message(lang, "title", "left_all")
        label = self.book.topics[topic].label_for(lang, EN)
        return message(lang, "title", "left_topic", topic=label)

    # --- double opt-in -------------------------------------------------------------------------

    def confirm(self, request: Request, token: str) -> Response:
        who = self._verified(request, token)
        if isinstance(who, Response):
            return who
        if who.campaign != CONFIRM_CAMPAIGN:  # an unsubscribe link proves nothing about consent
            return message(asked_language(request), "bad_title", "bad", status=400)
        with self.store.engine.connect() as conn:
            reader = find_customer(conn, who.customer_id)
        if reader is None:
            return message(asked_language(request), "gone_title", "gone", status=404)
        lang = language(reader.locale)
        if (reader.email or "").strip().lower() != who.email.strip().lower():
            return message(lang, "confirm_title", "moved", status=410)
        if reader.email_confirmed_at is not None:
            return message(lang, "confirm_title", "already")
        if request.method == "GET":
            button = f'<button class="primary" type="submit">{words(lang, "confirm")}</button>'
            intro = words(lang, "confirm_intro", address=mask(who.email))
            return page(lang, "confirm_title", f'<p>{intro}</p><form method="post">{button}</form>')
        with self.store.engine.begin() as conn:
            done = confirm_address(conn, reader.id, who.email, self.clock())
        if done:
            log.info("double opt-in: a customer confirmed their address")
        return message(lang, "confirm_title", "confirmed" if done else "already", address=mask(who.email))
