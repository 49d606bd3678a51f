"""The webhook channel's message: a JSON body rendered from a template, and the headers that sign it.

Body templates live in templates/ (``vip_followup.json.j2``) and must render JSON. Write every value
with Jinja's built-in ``tojson`` filter, never inside hand-made quotes::

    {"customer": {{ customer.id | tojson }}, "name": {{ customer.first_name | tojson }},
     "note": {{ ("Spent " ~ customer.attributes.total_spent) | tojson }}}

``tojson`` writes a complete JSON value (quotes included) and escapes what would break the document:
a quote or a newline in a name, Chinese text (as \\u escapes, which every JSON reader decodes), and
``<``/``>``/``&``/``'``. ``"{{ customer.first_name }}"`` works in validate and then fails for the first
customer called ``Li "Lei"``. The rendered text is sent exactly as rendered: the signature covers
those bytes, so nothing re-serialises it on the way out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from jinja2.sandbox import SandboxedEnvironment

from engine.core.errors import RenderError, problem
from engine.messages.templates import render_file

WEBHOOK_SECRET_VARIABLE = "NUDGE_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Nudge-Signature"
USER_AGENT = "nudge"


def render_body(env: SandboxedEnvironment, template: str, context: Mapping[str, Any]) -> str:
    """The body template rendered for one context, checked to be JSON; RenderError naming the
    template and the line and column of the rendered text where it stops being JSON."""
    text = render_file(env, template, context)
    try:
        json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise RenderError(
            f"{template}: rendered body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # NaN or Infinity: Python reads them, most JSON readers refuse them
        raise RenderError(f"{template}: rendered body is not JSON: {exc}") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in a value written without tojson
        raise RenderError(f"{template}: rendered body is not UTF-8 text (a value holds a lone surrogate)") from None
    return text


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value (a number that is not finite)")


def signed_headers(secret: bytes, delivery_id: int, body: str) -> dict[str, str]:
    """The headers of one webhook request: the delivery id as Idempotency-Key (a retried request
    carries the same one, so the receiver can drop the repeat) and the HMAC-SHA256 of the body's
    UTF-8 bytes under the secret, hex, as ``sha256=…`` (the form GitHub's webhooks use)."""
    digest = hmac.new(secret, body.encode("utf-8"), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "Idempotency-Key": str(delivery_id),
        SIGNATURE_HEADER: f"sha256={digest}",
        "X-Nudge-Delivery": str(delivery_id),
        "User-Agent": USER_AGENT,
    }


def webhook_secret(environ: Mapping[str, str]) -> bytes:
    """The key that signs webhook bodies, from NUDGE_WEBHOOK_SECRET; a UserInputError naming the
    variable when it is unset or empty (a workspace with webhook actions cannot send without it)."""
    value = environ.get(WEBHOOK_SECRET_VARIABLE, "")
    if not value.strip():
        raise problem(
            WEBHOOK_SECRET_VARIABLE,
            "must be set in the environment to sign webhook requests "
            "(the receiver checks X-Nudge-Signature with the same secret)",
        )
    return value.encode("utf-8")


def webhook_url(environ: Mapping[str, str], url_env: str) -> str:
    """The URL a webhook action posts to, from its `url_env` variable; a UserInputError naming the
    variable when it is unset or not an http(s) URL. The URL itself is never put in the message:
    its path or query often holds the receiver's key (Slack, WeChat Work, Discord)."""
    value = environ.get(url_env, "").strip()
    if not value:
        raise problem(url_env, "must be set in the environment to the URL this webhook action posts to")
    try:
        parts = urlsplit(value)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:  # a port that is not a number, a broken IPv6 literal
        usable = False
    if not usable:
        raise problem(url_env, "is not an http:// or https:// URL with a host")
    return value
