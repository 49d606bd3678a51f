"""Unsubscribe tokens as earlier versions of nudge wrote them (base64 JSON, a dot, an HMAC-SHA256),
written here independently of engine code so the links already in customers' inboxes stay pinned;
and a check that a token shows nothing readable."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from datetime import datetime

# Made by nudge before opaque tokens: key b"test-secret", customer "ann", "ann@example.com",
# campaign "promo", issued 2026-06-01T12:00:00Z.
GOLDEN_LEGACY = (
    "WyJhbm4iLCJhbm5AZXhhbXBsZS5jb20iLCJwcm9tbyIsMTc4MDMxNTIwMF0.LQEmEv77Ti8sqBHVaurXCUIDUxq7GJ46cevK4jOesa8"
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def legacy_sign(secret: bytes, customer_id: str, email: str, campaign: str, issued_at: datetime) -> str:
    payload = json.dumps([customer_id, email, campaign, int(issued_at.timestamp())], separators=(",", ":"))
    body = _b64(payload.encode())
    return f"{body}.{_b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())}"


def readable(token: str, *secrets: str) -> list[str]:
    """Which of `secrets` (an address, a customer id, a campaign, parts of them) can be read in the
    token itself, in the bytes its base64 pieces decode to, or in JSON those bytes hold."""
    texts, blobs = [token], []
    for piece in token.replace(".", " ").split():
        blobs.append(base64.urlsafe_b64decode(piece + "=" * (-len(piece) % 4)))
        with contextlib.suppress(ValueError):  # the old tokens' JSON wrote non-ASCII as \u escapes
            texts.append(json.dumps(json.loads(blobs[-1]), ensure_ascii=False))
    return [s for s in secrets if any(s in text for text in texts) or any(s.encode() in blob for blob in blobs)]
