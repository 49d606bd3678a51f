"""Did it work? One campaign's measurement (from `nudge report --format json`'s `measurement`) as
the dashboard shows it: each group's conversion with its 95% interval as error bars, the
difference against the holdout on its own axis around zero, the variants side by side, and the
same plain words as the terminal report. A journey's funnel as bars."""

from __future__ import annotations

from typing import Any

from engine.reports import charts
from engine.reports.lift import Arm, proportion_interval
from engine.reports.words import arm_words, difference_words, percent


def _interval(label: str, group: dict[str, Any], note: str = "") -> charts.Interval | None:
    """A group's conversion in percent with its Wilson interval (as the variants' ci95 in JSON)."""
    if not group["customers"]:
        return None
    low, high = proportion_interval(Arm(group["customers"], group["converted"]))
    assert low is not None and high is not None
    return charts.Interval(label, 100 * group["conversion"], 100 * low, 100 * high, note)


def measurement_view(name: str, data: dict[str, Any]) -> dict[str, Any]:
    groups = [_interval("contacted", data["contacted"]), _interval("holdout", data["holdout"])]
    groups += [_interval(f"variant {v['name']}", v) for v in data["variants"]]
    rows = [g for g in groups if g is not None]
    lift = data["lift"]
    difference = None
    if lift is not None:
        low, high = lift["ci95"]
        row = charts.Interval("contacted − holdout", 100 * lift["difference"], 100 * low, 100 * high)
        difference = charts.error_bars("lift", f"difference of {name} against its holdout", [row], "pp", True)
    return {
        "name": name,
        "goal": data["goal"],
        "contacted": arm_words(data["contacted"]),
        "holdout": arm_words(data["holdout"]),
        "difference_words": difference_words(lift),
        "lift": lift,
        "conversion_chart": charts.error_bars("conversion", f"conversion of {name} with 95% intervals", rows, "%")
        if rows
        else None,
        "difference_chart": difference,
        "variants": [
            {
                **v,
                "rate": percent(v["conversion"]),
                "interval": "–" if v["ci95"][0] is None else f"{percent(v['ci95'][0])} … {percent(v['ci95'][1])}",
            }
            for v in data["variants"]
        ],
        "verdict": data["verdict"],
        "coupons": data["coupons"],
        "raw": data,
    }


def funnel_view(data: dict[str, Any]) -> dict[str, Any]:
    """A journey's passes as bars: entered, each step reached, then how the passes ended."""
    rows = [("entered", data["entered"])]
    rows += [(f"step {s['step']}", s["reached"]) for s in data["steps"]]
    if data["exited"]["event"]:
        rows.append((f"left on {data['exited']['event']}", data["exited"]["passes"]))
    rows += [("finished", data["finished"]), ("on the way", data["in_progress"])]
    return {**data, "chart": charts.bars("funnel", f"funnel of the journey {data['journey']}", rows)}
