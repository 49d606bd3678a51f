"""Coupon codes: unique, unguessable, and easy to read aloud (no 0/O, 1/I/L)."""

from __future__ import annotations

import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 10  # 31**10 ≈ 8e14 codes: guessing one is hopeless


def new_code(prefix: str | None = None) -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return f"{prefix}-{body}" if prefix else body
