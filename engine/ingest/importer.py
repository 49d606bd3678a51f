"""`nudge import`: stream a file into the store in batches, all or nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.api import SourceError
from connectors.registry import source_for
from engine.core.errors import Problem, UnknownConnector, UserInputError
from engine.ingest.bulk import insert_events
from engine.ingest.rows import customer_row, event_row
from engine.store import Store, dialect_insert
from engine.store.privacy import forgotten_among
from engine.store.tables import customers, forgotten

BATCH = 5_000
KINDS = ("customers", "events")
# Columns a file of each kind must name (its header is checked before any row is read).
REQUIRED = {"customers": ("id",), "events": ("customer_id", "type")}


@dataclass
class ImportResult:
    kind: str
    read: int = 0
    written: int = 0
    rejected: list[Problem] = field(default_factory=list)
    forgotten: int = 0  # rows of customers erased with `nudge forget`: skipped, never re-created


def _upsert_customers(conn: Connection, store: Store, rows: list[dict[str, Any]], now: datetime) -> None:
    # executemany needs one column set per statement: group rows by the fields they name.
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(frozenset(row), []).append({**row, "updated_at": now})
    for keys, group in groups.items():
        stmt = dialect_insert(store.dialect, customers)
        merged_attributes = (
            customers.c.attributes.op("||")(stmt.excluded.attributes)
            if store.dialect == "postgresql"
            else sa.func.json_patch(customers.c.attributes, stmt.excluded.attributes)
        )
        updates = {k: stmt.excluded[k] for k in keys if k not in ("id", "attributes")}
        updates["attributes"] = merged_attributes
        updates["updated_at"] = stmt.excluded.updated_at
        defaults = {"email_opt_in": False}
        values = [{**defaults, **row} if "email_opt_in" not in keys else row for row in group]
        conn.execute(stmt.on_conflict_do_update(index_elements=[customers.c.id], set_=updates), values)


def _known_customers(conn: Connection, ids: set[str]) -> set[str]:
    found: set[str] = set()
    ordered = sorted(ids)
    for start in range(0, len(ordered), 1000):
        chunk = ordered[start : start + 1000]
        found.update(conn.execute(sa.select(customers.c.id).where(customers.c.id.in_(chunk))).scalars())
    return found


def _not_forgotten(
    conn: Connection, rows: list[tuple[int, dict[str, Any]]], key: str, result: ImportResult, any_forgotten: bool
) -> list[tuple[int, dict[str, Any]]]:
    if not any_forgotten:
        return rows
    erased = forgotten_among(conn, {row[key] for _, row in rows})
    kept = [(line, row) for line, row in rows if row[key] not in erased]
    result.forgotten += len(rows) - len(kept)
    return kept


def _insert_events(
    conn: Connection, store: Store, rows: list[tuple[int, dict[str, Any]]], path: str, result: ImportResult
) -> int:
    known = _known_customers(conn, {row["customer_id"] for _, row in rows})
    good = []
    for line, row in rows:
        if row["customer_id"] in known:
            good.append(row)
        else:
            result.rejected.append(Problem(path, line, None, f"customer_id: unknown customer {row['customer_id']!r}"))
    return insert_events(conn, good)


def _batches(rows: Iterator[tuple[int, Any]], size: int) -> Iterator[list[tuple[int, Any]]]:
    batch: list[tuple[int, Any]] = []
    for item in rows:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _parsed(
    raw_rows: Iterable[tuple[int, Any]], kind: str, untyped: bool, path: str, result: ImportResult
) -> Iterator[tuple[int, dict[str, Any]]]:
    parse = customer_row if kind == "customers" else event_row
    first_line: dict[str, int] = {}  # customer id → the line that gave it (one row per customer)
    for line, raw in raw_rows:
        result.read += 1
        if isinstance(raw, ValueError):
            result.rejected.append(Problem(path, line, None, str(raw)))
            continue
        try:
            row = parse(raw, untyped)
        except ValueError as exc:
            result.rejected.append(Problem(path, line, None, str(exc)))
            continue
        if kind == "customers":
            seen = first_line.setdefault(row["id"], line)
            if seen != line:
                result.rejected.append(
                    Problem(
                        path,
                        line,
                        None,
                        f"id: {row['id']!r} appears again (first on line {seen}): one row per customer",
                    )
                )
                continue
        yield line, row


def load_rows(
    conn: Connection,
    store: Store,
    raw_rows: Iterable[tuple[int, Any]],
    result: ImportResult,
    *,
    path: str,
    untyped: bool,
    now: datetime,
    batch_size: int = BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Validate and write rows in the caller's transaction; rejects are collected in `result`
    (the caller decides to commit or roll back)."""
    kind = result.kind
    any_forgotten = conn.execute(sa.select(forgotten.c.id_hash).limit(1)).first() is not None
    for parsed in _batches(_parsed(raw_rows, kind, untyped, path, result), batch_size):
        key = "id" if kind == "customers" else "customer_id"
        batch = _not_forgotten(conn, parsed, key, result, any_forgotten)
        if kind == "customers":
            latest: dict[str, dict[str, Any]] = {}
            for _, row in batch:  # the last row for an id wins, as if applied in order
                latest.pop(row["id"], None)
                latest[row["id"]] = row
            _upsert_customers(conn, store, list(latest.values()), now)
            result.written += len(latest)
        else:
            result.written += _insert_events(conn, store, batch, path, result)
        if on_progress is not None:
            on_progress(result.read)
    result.rejected.sort(key=lambda p: p.line or 0)


def import_rows(
    store: Store,
    kind: str,
    raw_rows: Iterable[tuple[int, Any]],
    *,
    path: str,
    untyped: bool,
    now: datetime,
    skip_invalid: bool = False,
    batch_size: int = BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Load rows in one transaction. Any rejected row rolls everything back unless skip_invalid."""
    result = ImportResult(kind=kind)
    with store.engine.connect() as conn:
        if store.is_sqlite:
            # Index pages of a large store do not fit SQLite's default 2 MB cache: inserts would
            # keep re-reading them. 128 MB for this connection only (the pool resets it after).
            conn.exec_driver_sql("PRAGMA cache_size=-131072")
            conn.commit()
        transaction = conn.begin()
        try:
            load_rows(
                conn,
                store,
                raw_rows,
                result,
                path=path,
                untyped=untyped,
                now=now,
                batch_size=batch_size,
                on_progress=on_progress,
            )
            if result.rejected and not skip_invalid:
                transaction.rollback()
                raise UserInputError(result.rejected)
            transaction.commit()
        except BaseException:
            if transaction.is_active:
                transaction.rollback()
            raise
        finally:
            if store.is_sqlite:
                conn.exec_driver_sql("PRAGMA cache_size=-2000")
                conn.commit()
    return result


def import_file(
    store: Store,
    kind: str,
    file: Path,
    *,
    now: datetime,
    skip_invalid: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import a CSV or JSON Lines file of customers or events."""
    shown = str(file)
    if kind not in KINDS:
        raise UserInputError([Problem(shown, None, None, f"unknown import kind {kind!r}: use customers or events")])
    try:
        reader = source_for(file)
    except UnknownConnector as exc:
        raise UserInputError([Problem(shown, None, None, str(exc))]) from None
    if not file.is_file():
        raise UserInputError([Problem(shown, None, None, "file not found")])
    try:
        result = import_rows(
            store,
            kind,
            reader.rows(file, REQUIRED[kind]),
            path=shown,
            untyped=reader.untyped,
            now=now,
            skip_invalid=skip_invalid,
            on_progress=on_progress,
        )
    except SourceError as exc:
        raise UserInputError([Problem(shown, exc.line, None, str(exc))]) from None
    except UnicodeDecodeError as exc:
        raise UserInputError([Problem(shown, None, None, f"not UTF-8 text: {exc.reason}")]) from None
    store.analyze()
    return result
