"""How cost grows with size: `python -m bench.growth RESULT.json ...` prints, from benchmark runs at
several scales, the cost per customer of the four campaigns (hand SQL, nudge's planner, `nudge
dry-run`) and per imported event, with their ratios, as a Markdown table. Flat rows mean cost
grows linearly with the store; the ratios are the ones `python -m bench` prints."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _per(seconds: float, count: int) -> str:
    return f"{seconds / count * 1e6:.2f} µs"


def rows(results: list[dict]) -> list[str]:
    lines = [
        "| customers | database | hand SQL | nudge engine | `nudge dry-run` | engine / hand | dry-run / hand "
        "| import, per event | import / floor |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in sorted(results, key=lambda r: r["customers"]):
        customers = result["customers"]
        for db in result["databases"]:
            segments, found = db["segments"], db["import"]
            hand, engine = segments["hand_sql"]["seconds"], segments["engine"]["seconds"]
            cli = segments["dry_run_cli"]["seconds"]
            floor = db.get("import_floor", {}).get("events_per_second")
            ratio = f"{found['events_per_second'] / floor:.2f}" if floor else "–"
            lines.append(
                f"| {customers:,} | {db['database']} | {_per(hand, customers)} | {_per(engine, customers)} "
                f"| {_per(cli, customers)} | {engine / hand:.2f} | {cli / hand:.2f} "
                f"| {_per(found['event_seconds'], found['events'])} | {ratio} |"
            )
    return lines


if __name__ == "__main__":
    print("\n".join(rows([json.loads(Path(name).read_text()) for name in sys.argv[1:]])))
