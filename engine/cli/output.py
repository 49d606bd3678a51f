"""Output without rich: JSON and CSV for programs, times as people read them, and the console
(rich is imported only when a table is drawn: `nudge --help` and `dry-run --format json` do not load it)."""

from __future__ import annotations

import csv
import json
import re
import secrets
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
    """Indented for people, with every list of plain values on one line: the standard library
    indents only in pure Python (a dry run's million ids took seconds), and a million ids read
    better on one line than on a million."""
    flat: list[str] = []
    nonce = secrets.token_hex(8)  # no value of the data can look like a placeholder

    def flatten(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: flatten(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            if value and all(isinstance(v, str | int | float | bool) or v is None for v in value):
                flat.append(json.dumps(value, ensure_ascii=False))  # one C-speed call
                return f"\x00{nonce}:{len(flat) - 1}\x00"
            return [flatten(v) for v in value]
        return value

    text = json.dumps(flatten(data), indent=2, default=json_default, ensure_ascii=False)
    if flat:
        # The placeholders come out as "\u0000N\u0000": each put back once, in one pass.
        found = re.compile(rf'"\\u0000{nonce}:(\d+)\\u0000"')
        text = found.sub(lambda m: flat[int(m.group(1))], text)
    out.write(text)
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
