"""Output without rich: JSON and CSV for programs, times as people read them, and the console
(rich is imported only when a table is drawn: `nudge --help` and `dry-run --format json` do not load it)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from engine.core.clock import aware_utc

if TYPE_CHECKING:
    from rich.console import Console


def make_console() -> Console:
    """A terminal keeps its width (COLUMNS wins); a pipe or a file gets 120 columns, not rich's 80."""
    import os
    import sys

    from rich.console import Console

    if os.environ.get("COLUMNS", "").isdigit():
        return Console(width=int(os.environ["COLUMNS"]))
    return Console() if sys.stdout.isatty() else Console(width=120)


def json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def write_json(data: Any, out: IO[str]) -> None:
    json.dump(data, out, indent=2, default=json_default, ensure_ascii=False)
    out.write("\n")


def local_time(moment: datetime, zone: str) -> str:
    """An instant as people read it: the config's zone, to the second (JSON keeps ISO 8601 UTC)."""
    return aware_utc(moment).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def dry_run_csv(rows: Iterable[tuple[str, str, str]], out: IO[str]) -> None:
    writer = csv.writer(out)
    writer.writerow(["campaign", "customer_id", "outcome"])
    writer.writerows(rows)


def write_csv(rows: list[dict[str, Any]], columns: Iterable[str], out: IO[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
