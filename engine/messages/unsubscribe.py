"""Signed unsubscribe tokens: HMAC-SHA256 over the customer, address and campaign, with an issue time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from engine.core.errors import TokenError

SECRET_VARIABLE = "NUDGE_SECRET"
# Only for the file outbox (demo, previews): real connectors refuse to start without NUDGE_SECRET.
DEVELOPMENT_SECRET = b"nudge-development-secret-not-for-production"
MAX_AGE = timedelta(days=400)


@dataclass(frozen=True)
class Unsubscribe:
    customer_id: str
    email: str
    campaign: str
    issued_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secret_from(environ: Mapping[str, str], *, required: bool) -> bytes:
    """The signing key from NUDGE_SECRET; the development key only where allowed."""
    value = environ.get(SECRET_VARIABLE)
    if value:
        return value.encode()
    if required:
        raise KeyError(SECRET_VARIABLE)
    print(
        f"warning: {SECRET_VARIABLE} is not set: unsubscribe links are signed with a development key", file=sys.stderr
    )
    return DEVELOPMENT_SECRET


def sign(secret: bytes, customer_id: str, email: str, campaign: str, issued_at: datetime) -> str:
    payload = json.dumps([customer_id, email, campaign, int(issued_at.timestamp())], separators=(",", ":"))
    body = _b64(payload.encode())
    mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify(secret: bytes, token: str, now: datetime, max_age: timedelta = MAX_AGE) -> Unsubscribe:
    try:
        body, mac = token.split(".")
        expected = hmac.new(secret, body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            raise TokenError("bad signature")
        customer_id, email, campaign, issued = json.loads(_unb64(body))
    except (ValueError, TypeError) as exc:
        raise TokenError(f"malformed token: {exc}") from None
    issued_at = datetime.fromtimestamp(issued, timezone.utc)
    if now - issued_at > max_age:
        raise TokenError("expired token")
    return Unsubscribe(customer_id, email, campaign, issued_at)


def fresh_secret() -> str:
    """A new random key for NUDGE_SECRET (printed by `nudge secret`)."""
    return _b64(os.urandom(32))
