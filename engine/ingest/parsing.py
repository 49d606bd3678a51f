"""Source rows → validated store rows, in batches. Runs in the importing process or, for a
large file, in a second process (`reader_process`) while the first writes."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.core.clock import naive_utc
from engine.core.errors import Problem
from engine.ingest.bulk import event_record
from engine.ingest.contact import KnownTopics
from engine.ingest.rows import NO_TOPICS, customer_row, event_row

KINDS = ("customers", "events")
# Columns a file of each kind must name (its header is checked before any row is read).
REQUIRED = {"customers": ("id",), "events": ("customer_id", "type")}
# A parsed row: a customer is a dict of columns (it names only some); an event is a record
# tuple in `bulk.RECORD` order (cheap to pass between processes).
Parsed = tuple[int, Any]
FUTURE_LEEWAY = timedelta(hours=24)


@dataclass
class ImportResult:
    kind: str
    read: int = 0
    written: int = 0
    created: int = 0  # customers an event named that the store had not seen (HTTP ingestion only)
    rejected: list[Problem] = field(default_factory=list)
    consent_logged: int = 0  # entries appended to the consent log (customers: a change of consent)
    forgotten: int = 0  # rows of customers erased with `nudge forget`: skipped, never re-created
    statistics: str | None = None  # why the planner statistics could not be refreshed afterwards


def parse_rows(
    raw_rows: Iterable[tuple[int, Any]],
    kind: str,
    untyped: bool,
    path: str,
    result: ImportResult,
    now: datetime,
    topics: KnownTopics = NO_TOPICS,
) -> Iterator[Parsed]:
    """Yield (line, parsed row); rejects are collected in `result`. An event may be at most
    FUTURE_LEEWAY after `now` (a clock a little ahead; not a date typed wrong). `topics`: what a
    customer's `topics.NAME` column may name."""
    first_line: dict[str, int] = {}  # customer id → the line that gave it (one row per customer)
    customers = kind == "customers"
    latest = naive_utc(now) + FUTURE_LEEWAY
    for line, raw in raw_rows:
        result.read += 1
        if isinstance(raw, ValueError):
            result.rejected.append(Problem(path, line, None, str(raw)))
            continue
        try:
            row: Any = (
                customer_row(raw, untyped, topics) if customers else event_record(event_row(raw, untyped, latest))
            )
        except ValueError as exc:
            result.rejected.append(Problem(path, line, None, str(exc)))
            continue
        if customers:
            seen = first_line.setdefault(row["id"], line)
            if seen != line:
                message = f"id: {row['id']!r} appears again (first on line {seen}): one row per customer"
                result.rejected.append(Problem(path, line, None, message))
                continue
        yield line, row


def batches(rows: Iterator[Parsed], size: int) -> Generator[list[Parsed], None, None]:
    batch: list[Parsed] = []
    for item in rows:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
