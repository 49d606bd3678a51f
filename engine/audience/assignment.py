"""Who is held out, and who gets which A/B variant: stable hashes of campaign and customer, the same
on every run and machine (a running experiment's groups never reshuffle)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable


def holdout_test(campaign: str, percent: float) -> Callable[[str], bool] | None:
    """Deterministic control group: the same customer stays in or out across runs and machines.
    The test for one campaign, its constant parts computed once (it runs for every candidate)."""
    if percent <= 0:
        return None
    prefix, limit, sha256 = f"{campaign}\x1f".encode(), round(percent * 100), hashlib.sha256

    def held_out(customer_id: str) -> bool:
        return int.from_bytes(sha256(prefix + customer_id.encode()).digest()[:8], "big") % 10_000 < limit

    return held_out


def in_holdout(campaign: str, customer_id: str, percent: float) -> bool:
    test = holdout_test(campaign, percent)
    return test is not None and test(customer_id)


GLOBAL_SALT = "global-control-group"


def in_global_holdout(customer_id: str, percent: float) -> bool:
    """The programme's control group: one hash of the customer alone, so it is the same customers
    for every campaign, today and next year."""
    return in_holdout(GLOBAL_SALT, customer_id, percent)


def variant_for(campaign: str, customer_id: str, weights: list[tuple[str, float]]) -> str | None:
    """The customer's A/B variant: a stable hash of campaign and customer, salted apart from the
    holdout's so that who is held out says nothing about who gets which variant."""
    if not weights:
        return None
    digest = hashlib.sha256(f"variant\x1f{campaign}\x1f{customer_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 10_000
    edge = 0.0
    for name, weight in weights:
        edge += weight * 100
        if bucket < round(edge):
            return name
    return weights[-1][0]
