"""Which messages share one SendGrid v3 mail/send request, and that request's body.

Messages whose subject, HTML, text and shared headers are the same once each recipient's own
links (unsubscribe, preferences: `OutgoingEmail.links`) are taken out go in one request, one
personalization per recipient (≤ 1000, no address twice): the links come back per recipient as
legacy `substitutions`, the one-click headers and Message-ID as personalization `headers`, the
delivery id as `custom_args` (the event webhook maps events back by it). Anything else personal
(a name, a coupon code) makes the content differ, so such a message goes alone, as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.utils import parseaddr
from typing import Any

from connectors.api import OutgoingEmail

MAX_PERSONALIZATIONS = 1000  # SendGrid's documented limit per request
MAX_SUBSTITUTION_BYTES = 10_000  # SendGrid's limit per personalization
TAG_MARK = "%nudge_"
# Headers that differ from one recipient to the next: never a reason not to share a request.
PER_RECIPIENT = ("List-Unsubscribe", "X-Nudge-Delivery", "Message-ID")
OWN_HEADERS = ("List-Unsubscribe", "Message-ID")  # sent per personalization (X-Nudge-Delivery: custom_args)


def tag(name: str) -> str:
    return f"{TAG_MARK}{name}%"


def _links(email: OutgoingEmail) -> dict[str, str]:
    """The recipient's links; a message built without them (a plugin's, an older caller's) still
    names its unsubscribe link in List-Unsubscribe."""
    links = {name: url for name, url in email.links.items() if url}
    header = email.headers.get("List-Unsubscribe", "")
    if "unsubscribe_url" not in links and header.startswith("<") and header.endswith(">"):
        links["unsubscribe_url"] = header[1:-1]
    return links


def factor(email: OutgoingEmail) -> tuple[tuple, dict[str, str]]:
    """(what must be identical to share a request, this recipient's substitutions).

    Only the links' exact spelling is taken out: one written differently (HTML-escaped, say)
    stays in the content, which then differs per recipient and goes alone: slower, never wrong.
    """
    html, text = email.html, email.text
    if TAG_MARK in html or TAG_MARK in text:
        # The content already holds what looks like our tag: substituting would change it.
        return ("alone", email.delivery_id), {}
    substitutions = {}
    # Longest first: a link that is part of another must not break the other's replacement.
    for name, url in sorted(_links(email).items(), key=lambda item: -len(item[1])):
        if url in html or url in text:
            html, text = html.replace(url, tag(name)), text.replace(url, tag(name))
            substitutions[tag(name)] = url
    if sum(len(k.encode()) + len(v.encode()) for k, v in substitutions.items()) > MAX_SUBSTITUTION_BYTES:
        return ("alone", email.delivery_id), {}
    headers = tuple(sorted((k, v) for k, v in email.headers.items() if k not in PER_RECIPIENT))
    return (email.sender, email.subject, html, text, headers), substitutions


def group(batch: Iterable[OutgoingEmail]) -> list[list[OutgoingEmail]]:
    """Requests for a batch: identical content together (≤ 1000, no address twice), the rest alone."""
    chunks: dict[tuple, list[tuple[list[OutgoingEmail], set[str]]]] = {}
    for email in batch:
        key, _ = factor(email)
        address = email.to.lower()
        open_chunks = chunks.setdefault(key, [])
        target = next(
            (c for c in open_chunks if len(c[0]) < MAX_PERSONALIZATIONS and address not in c[1]),
            None,
        )
        if target is None:
            target = ([], set())
            open_chunks.append(target)
        target[0].append(email)
        target[1].add(address)
    return [members for found in chunks.values() for members, _ in found]


def _sender(value: str) -> dict[str, str]:
    name, address = parseaddr(value)
    return {"email": address, **({"name": name} if name else {})}


def _personalization(email: OutgoingEmail, substitutions: dict[str, str] | None) -> dict[str, Any]:
    personalization: dict[str, Any] = {
        "to": [{"email": email.to}],
        "custom_args": {"nudge_delivery": str(email.delivery_id)},
    }
    own = {k: email.headers[k] for k in OWN_HEADERS if k in email.headers}
    if own:
        personalization["headers"] = own
    if substitutions:
        personalization["substitutions"] = substitutions
    return personalization


def payload(members: list[OutgoingEmail], sandbox_mode: bool = False) -> dict[str, Any]:
    """The mail/send body for one request (members from `group`, or a part of one)."""
    first = members[0]
    if len(members) == 1:  # alone: the content as rendered, nothing to substitute
        html, text = first.html, first.text
        personalizations = [_personalization(first, None)]
    else:
        (_, _, html, text, _), _ = factor(first)
        personalizations = [_personalization(email, factor(email)[1]) for email in members]
    body: dict[str, Any] = {
        "personalizations": personalizations,
        "from": _sender(first.sender),
        "subject": first.subject,
        "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html}],
    }
    headers = {k: v for k, v in first.headers.items() if k not in PER_RECIPIENT}
    if headers:
        body["headers"] = headers
    if sandbox_mode:
        body["mail_settings"] = {"sandbox_mode": {"enable": True}}
    return body
