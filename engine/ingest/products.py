"""`nudge import products`: the catalogue from CSV or JSON Lines, upserted by id, all or nothing
(or the valid rows with `--skip-invalid`), every bad row reported at its line."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.api import SourceError
from connectors.registry import source_for
from engine.core.clock import naive_utc
from engine.core.errors import Problem, UnknownConnector, UserInputError
from engine.ingest.parsing import ImportResult, Parsed, batches
from engine.ingest.product_rows import product_row
from engine.store import Store, dialect_insert
from engine.store.tables import products

BATCH = 5_000


def parse_products(
    raw_rows: Iterable[tuple[int, Any]], untyped: bool, path: str, result: ImportResult
) -> Iterator[Parsed]:
    """Yield (line, product row); rejects are collected in `result`, one row per id."""
    first_line: dict[str, int] = {}
    for line, raw in raw_rows:
        result.read += 1
        if isinstance(raw, ValueError):  # a line the reader could not make a row of
            result.rejected.append(Problem(path, line, None, str(raw)))
            continue
        try:
            row = product_row(raw, untyped)
        except ValueError as exc:
            result.rejected.append(Problem(path, line, None, str(exc)))
            continue
        seen = first_line.setdefault(row["id"], line)
        if seen != line:
            message = f"id: {row['id']!r} appears again (first on line {seen}): one row per product"
            result.rejected.append(Problem(path, line, None, message))
            continue
        yield line, row


def upsert_products(conn: Connection, dialect: str, rows: list[dict[str, Any]], now: datetime) -> int:
    """Insert or update one batch in the caller's transaction: the columns a row names replace the
    stored ones, its attributes are merged into the stored attributes (as for customers)."""
    # executemany needs one column set per statement: group rows by the columns they name.
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    stamp = naive_utc(now)
    for row in rows:
        values = {**row, "updated_at": stamp}
        groups.setdefault(frozenset(values), []).append(values)
    for keys, group in groups.items():
        stmt = dialect_insert(dialect, products)
        merged = (
            products.c.attributes.op("||")(stmt.excluded.attributes)
            if dialect == "postgresql"
            else sa.func.json_patch(products.c.attributes, stmt.excluded.attributes)
        )
        updates: dict[str, Any] = {k: stmt.excluded[k] for k in keys if k not in ("id", "attributes")}
        updates["attributes"] = merged
        conn.execute(stmt.on_conflict_do_update(index_elements=[products.c.id], set_=updates), group)
    return len(rows)


def load_products(
    store: Store,
    raw_rows: Iterable[tuple[int, Any]],
    *,
    path: str,
    untyped: bool,
    now: datetime,
    skip_invalid: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Validate and write rows in one transaction; any reject rolls it all back unless skip_invalid."""
    result = ImportResult(kind="products")
    parsed = batches(parse_products(raw_rows, untyped, path, result), BATCH)
    with store.engine.begin() as conn:
        for batch in parsed:
            result.written += upsert_products(conn, store.dialect, [row for _, row in batch], now)
            if on_progress is not None:
                on_progress(result.read)
        result.rejected.sort(key=lambda p: p.line or 0)
        if result.rejected and not skip_invalid:
            raise UserInputError(result.rejected)  # leaving the block rolls the transaction back
    return result


def import_products(
    store: Store,
    file: Path,
    *,
    now: datetime,
    skip_invalid: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import a CSV or JSON Lines catalogue file (`id` required)."""
    shown = str(file)
    try:
        reader = source_for(file)
    except UnknownConnector as exc:
        raise UserInputError([Problem(shown, None, None, str(exc))]) from None
    if not file.is_file():
        raise UserInputError([Problem(shown, None, None, "file not found")])
    try:
        rows = reader.rows(file, ("id",))
        result = load_products(
            store, rows, path=shown, untyped=reader.untyped, now=now, skip_invalid=skip_invalid, on_progress=on_progress
        )
    except SourceError as exc:
        raise UserInputError([Problem(shown, exc.line, None, str(exc))]) from None
    except UnicodeDecodeError as exc:
        raise UserInputError([Problem(shown, None, None, f"not UTF-8 text: {exc.reason}")]) from None
    try:
        store.analyze(products)
    except sa.exc.DBAPIError as exc:
        # The rows are committed: stale statistics make later queries slower, not the import a failure.
        result.statistics = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    return result
