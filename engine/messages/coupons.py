"""Coupon codes: unique, unguessable, and easy to read aloud (no 0/O, 1/I/L)."""

from __future__ import annotations

import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 10  # 31**10 ≈ 8e14 codes: guessing one is hopeless


def new_code(prefix: str | None = None) -> str:
    # One draw from the OS's CSPRNG, written in base 31: the same uniform codes as a draw per
    # character, for a tenth of the calls (delivery makes one per coupon).
    number = secrets.randbelow(len(ALPHABET) ** LENGTH)
    digits = []
    for _ in range(LENGTH):
        number, digit = divmod(number, len(ALPHABET))
        digits.append(ALPHABET[digit])
    body = "".join(digits)
    return f"{prefix}-{body}" if prefix else body
