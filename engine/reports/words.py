"""`nudge report`'s measurements in plain words, written once for the terminal, the dashboard
and `--html`: a conversion as a share and a count, the difference with its interval and verdict."""

from __future__ import annotations

from typing import Any


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def arm_words(arm: dict[str, Any]) -> str:
    """One group of a measurement: '12.5%  25 of 200 converted, revenue per customer 3.10'."""
    if not arm["customers"]:
        return "nobody"  # no control group: nothing to measure against
    money = arm["revenue_per_customer"]
    return f"{percent(arm['conversion'])}  {arm['converted']:,} of {arm['customers']:,} converted" + (
        "" if money is None else f", revenue per customer {money:,.2f}"
    )


def difference_words(lift: dict[str, Any] | None) -> str:
    """Contacted minus holdout in percentage points, its 95% interval and whether it shows an effect."""
    if lift is None:
        return "no holdout to compare with"
    low, high = lift["ci95"]
    relative = "" if lift["relative"] is None else f", {100 * lift['relative']:+.0f}% relative"
    verdict = "the interval excludes zero" if lift["significant"] else "the interval includes zero: no effect shown"
    interval = f"95% interval {100 * low:+.1f} … {100 * high:+.1f} pp"
    return f"{100 * lift['difference']:+.1f} pp{relative} ({interval}): {verdict}"
