"""A rendered email for one customer: HTML and text parts, unsubscribe link and headers, safe headers."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from email.utils import parseaddr
from html import escape as escape_html
from typing import Any
from urllib.parse import quote

from connectors.api import OutgoingEmail
from engine.messages.own_links import without_own_links
from engine.messages.textify import html_to_text

_LINE_BREAKS = re.compile(r"[\r\n\x00\u2028\u2029]+")
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")


def header_safe(value: str) -> str:
    """Customer data in a header must never start a new header line."""
    return _LINE_BREAKS.sub(" ", value).strip()


def unsubscribe_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/{quote(token, safe='')}"


def page_link(base_url: str, page: str, token: str) -> str:
    """A page of `nudge serve` beside /unsubscribe (e.g. /preferences/TOKEN): the configured
    unsubscribe URL says where customers reach the server, behind a proxy's path prefix too."""
    head, _, last = base_url.rstrip("/").rpartition("/")
    root = head if last == "unsubscribe" else base_url.rstrip("/")
    return f"{root}/{page}/{quote(token, safe='')}"


# What a dry run, a preview and validate put where a customer's own links will be.
SAMPLE_LINKS = {
    "unsubscribe_url": "https://example.invalid/unsubscribe/SAMPLE",
    "preferences_url": "https://example.invalid/preferences/SAMPLE",
}


def links(base_url: str, token: str) -> dict[str, str]:
    """What every email's template gets: `unsubscribe_url` (opened: the preference page; POSTed by
    a mail client: one-click, leaving the campaign's topic) and `preferences_url`."""
    return {
        "unsubscribe_url": unsubscribe_link(base_url, token),
        "preferences_url": page_link(base_url, "preferences", token),
    }


def build_email(
    *,
    delivery_id: int,
    sender: str,
    to: str,
    subject: str,
    body: str,
    is_html: bool,
    unsubscribe_url: str,
    campaign: str,
    links: Mapping[str, str] | None = None,
) -> OutgoingEmail:
    """Assemble the message; a text template gets a minimal HTML part, an HTML one a text part.
    `links`: the customer's other own links the body may hold (links() gives them), named so a
    connector can tell them from content shared with other recipients."""
    own = {**(links or {}), "unsubscribe_url": unsubscribe_url}
    if is_html:
        html, text = body, without_own_links(html_to_text, body, own)
    else:
        text = body
        html = '<pre style="font-family: inherit; white-space: pre-wrap">' + escape_html(body) + "</pre>"
    if unsubscribe_url not in text:
        text = text.rstrip("\n") + f"\n\nUnsubscribe: {unsubscribe_url}\n"
    if unsubscribe_url not in html:
        # Every message carries a working link, even when its template forgot one.
        footer = f'<p style="font-size:12px;color:#777"><a href="{escape_html(unsubscribe_url)}">Unsubscribe</a></p>'
        closing = html.lower().rfind("</body>")
        html = html[:closing] + footer + html[closing:] if closing >= 0 else html + footer
    headers: dict[str, Any] = {
        "List-Unsubscribe": f"<{unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",  # RFC 8058 one-click
        "X-Nudge-Campaign": header_safe(campaign),
        "X-Nudge-Delivery": str(delivery_id),
        "Message-ID": message_id(delivery_id, campaign, to, sender),
    }
    return OutgoingEmail(
        delivery_id=delivery_id,
        sender=header_safe(sender),
        to=header_safe(to),
        subject=header_safe(subject),
        html=html,
        text=text,
        headers=headers,
        links=own,
    )


def message_id(delivery_id: int, campaign: str, to: str, sender: str) -> str:
    """On the From address's domain (a foreign or made-up domain there hurts deliverability), and
    the same for every attempt at one delivery, so a receiver can tell a retry from a new message."""
    domain = parseaddr(sender)[1].rpartition("@")[2].strip().lower()
    if not domain or not _DOMAIN.fullmatch(domain):
        domain = "localhost"
    digest = hashlib.sha256(f"{campaign}\0{delivery_id}\0{to}".encode()).hexdigest()[:16]
    return f"<nudge.{delivery_id}.{digest}@{domain}>"
