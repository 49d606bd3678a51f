"""`nudge import`: stream a file into the store in batches, all or nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.api import SourceError
from connectors.registry import source_for
from engine.core.channels import ConsentSource
from engine.core.clock import naive_utc
from engine.core.errors import Problem, UnknownConnector, UserInputError
from engine.ingest.bulk import CUSTOMER, indexes_deferred, insert_events
from engine.ingest.contact import KnownTopics
from engine.ingest.customer_batch import sqlite_write_lock, write_customers
from engine.ingest.parsing import KINDS, REQUIRED, ImportResult, Parsed, batches, parse_rows
from engine.ingest.rows import NO_TOPICS
from engine.store import Store, dialect_insert
from engine.store.privacy import forgotten_among
from engine.store.tables import customers, events, forgotten

__all__ = [
    "KINDS",
    "ImportResult",
    "KnownTopics",
    "create_missing_customers",
    "import_file",
    "import_rows",
    "load_rows",
    "sqlite_write_lock",
]

BATCH = 5_000
# Files at least this large are read and validated in a second process while this one writes.
READER_PROCESS_BYTES = 8 * 1024 * 1024
IMPORT_CACHE_KIB = -65536  # negative: KiB, as SQLite takes it. 64 MB: 128 MB measured no faster


def _known_customers(conn: Connection, ids: set[str], lock: bool = False) -> set[str]:
    """Which of these ids the store has. `lock` (PostgreSQL): held FOR KEY SHARE, as the events'
    foreign key would, until the transaction ends, so that an alias merging one of them waits for
    these events, or they for it (then the profile is not found and is created again), instead of
    the foreign key failing once the alias deletes the profile (engine/ingest/profiles.py)."""
    found: set[str] = set()
    ordered = sorted(ids)
    for start in range(0, len(ordered), 1000):
        query = sa.select(customers.c.id).where(customers.c.id.in_(ordered[start : start + 1000]))
        if lock:
            query = query.with_for_update(read=True, key_share=True)
        found.update(conn.execute(query).scalars())
    return found


def create_missing_customers(conn: Connection, store: Store, ids: set[str], now: datetime) -> int:
    """Customers with these ids, where the store has none: no address, no consent, nothing an
    existing customer has is changed. Returns how many were created."""
    if not ids:
        return 0
    stmt = dialect_insert(store.dialect, customers).on_conflict_do_nothing(index_elements=[customers.c.id])
    stamp = naive_utc(now)
    values = [{"id": i, "email_opt_in": False, "attributes": {}, "updated_at": stamp} for i in sorted(ids)]
    return len(conn.execute(stmt.returning(customers.c.id), values).all())


def _customer_of(kind: str) -> Callable[[Any], str]:
    if kind == "customers":
        return lambda row: row["id"]
    return lambda record: record[CUSTOMER]


def _not_forgotten(
    conn: Connection, rows: list[Parsed], customer_of: Callable[[Any], str], result: ImportResult, any_forgotten: bool
) -> list[Parsed]:
    if not any_forgotten:
        return rows
    erased = forgotten_among(conn, {customer_of(row) for _, row in rows})
    kept = [(line, row) for line, row in rows if customer_of(row) not in erased]
    result.forgotten += len(rows) - len(kept)
    return kept


def _insert_events(
    conn: Connection, rows: list[Parsed], path: str, result: ImportResult, create: tuple[Store, datetime] | None
) -> int:
    """Insert event records of known customers; the others are rejected, or their customers
    created (`create`: HTTP ingestion, where a pipeline sends track before identify)."""
    if create is None and conn.dialect.name == "sqlite":
        written = _insert_if_all_known(conn, rows)
        if written is not None:
            return written
    named = {record[CUSTOMER] for _, record in rows}
    if create is None:
        known = _known_customers(conn, named)
    else:
        store, now = create
        if store.is_sqlite:
            sqlite_write_lock(conn)
        known = _known_customers(conn, named, lock=not store.is_sqlite)
        result.created += create_missing_customers(conn, store, named - known, now)
        known = named
    good = []
    for line, record in rows:
        if record[CUSTOMER] in known:
            good.append(record)
        else:
            message = f"customer_id: unknown customer {record[CUSTOMER]!r}"
            result.rejected.append(Problem(path, line, None, message))
    return insert_events(conn, good)


def _insert_if_all_known(conn: Connection, rows: list[Parsed]) -> int | None:
    """SQLite: insert the batch and let the events' foreign key (always on in nudge's store) check
    the customers, in C, row by row: what a lookup of the batch's ids first cost was a third of
    the writer's time. None (and nothing written) when a customer is unknown: the caller then
    looks the ids up and names each rejected row. Savepoint: executemany stops at the failing row,
    after writing the ones before it."""
    driver = conn.connection.driver_connection
    assert driver is not None
    sqlite_write_lock(conn)  # a transaction first: a savepoint outside one would commit on release
    driver.execute("SAVEPOINT nudge_events_batch")
    try:
        written = insert_events(conn, [record for _, record in rows])
    except sqlite3.IntegrityError as exc:
        if "FOREIGN KEY" not in str(exc):
            raise
        written = None
        driver.execute("ROLLBACK TO nudge_events_batch")
    driver.execute("RELEASE nudge_events_batch")
    return written


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
    create_customers: bool = False,
    topics: KnownTopics = NO_TOPICS,
    source: str | None = None,
) -> None:
    """Validate and write rows in the caller's transaction; rejects are collected in `result`
    (the caller decides to commit or roll back). `create_customers`: an event of a customer the
    store has not seen creates it instead of being rejected. `topics`: what a `topics.NAME` column
    may name; `source`: the consent log's source (default: `import` and the file's name)."""
    parsed = batches(parse_rows(raw_rows, result.kind, untyped, path, result, now, topics), batch_size)
    write_batches(
        conn, store, parsed, result, path=path, now=now, on_progress=on_progress, create=create_customers, source=source
    )


def imported_from(path: str) -> str:
    """The consent log's source for rows of this file: `import customers.csv`."""
    return f"{ConsentSource.IMPORT} {Path(path).name or path}"


def write_batches(
    conn: Connection,
    store: Store,
    parsed: Iterator[list[Parsed]],
    result: ImportResult,
    *,
    path: str,
    now: datetime,
    on_progress: Callable[[int], None] | None = None,
    create: bool = False,
    source: str | None = None,
) -> None:
    """Write batches of parsed rows in the caller's transaction (`create`, `source`: see load_rows)."""
    kind = result.kind
    customer_of = _customer_of(kind)
    any_forgotten = conn.execute(sa.select(forgotten.c.id_hash).limit(1)).first() is not None
    for rows in parsed:
        batch = _not_forgotten(conn, rows, customer_of, result, any_forgotten)
        if kind == "customers":
            latest: dict[str, dict[str, Any]] = {}
            for _, row in batch:  # the last row for an id wins, as if applied in order
                latest.pop(row["id"], None)
                latest[row["id"]] = row
            if latest:
                logged = write_customers(conn, store, list(latest.values()), now, source or imported_from(path))
                result.consent_logged += logged
            result.written += len(latest)
        else:
            result.written += _insert_events(conn, batch, path, result, (store, now) if create else None)
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
    topics: KnownTopics = NO_TOPICS,
) -> ImportResult:
    """Load rows in one transaction. Any rejected row rolls everything back unless skip_invalid."""
    result = ImportResult(kind=kind)
    parsed = batches(parse_rows(raw_rows, kind, untyped, path, result, now, topics), batch_size)
    _write_all(store, parsed, result, path=path, now=now, skip_invalid=skip_invalid, on_progress=on_progress)
    return result


def _write_all(
    store: Store,
    parsed: Generator[list[Parsed], None, None],
    result: ImportResult,
    *,
    path: str,
    now: datetime,
    skip_invalid: bool,
    on_progress: Callable[[int], None] | None,
) -> None:
    with store.engine.connect() as conn, closing(parsed):  # closing: a reader process stops with us
        if store.is_sqlite:
            # Index pages of a large store do not fit SQLite's default 2 MB cache: inserts would
            # keep re-reading them. A larger one for this connection only (the pool resets it after).
            conn.exec_driver_sql(f"PRAGMA cache_size={IMPORT_CACHE_KIB}")
            conn.commit()
        transaction = conn.begin()
        try:
            with indexes_deferred(conn) if result.kind == "events" else nullcontext():
                write_batches(conn, store, parsed, result, path=path, now=now, on_progress=on_progress)
                if result.rejected and not skip_invalid:
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


def import_file(
    store: Store,
    kind: str,
    file: Path,
    *,
    now: datetime,
    skip_invalid: bool = False,
    on_progress: Callable[[int], None] | None = None,
    reader_process: bool | None = None,
    topics: KnownTopics = NO_TOPICS,
) -> ImportResult:
    """Import a CSV or JSON Lines file of customers or events. A large one (or any, with
    `reader_process`) is read and validated in a second process while this one writes.
    `topics`: the subscription topics a `topics.NAME` column may name."""
    shown = str(file)
    if kind not in KINDS:
        raise UserInputError([Problem(shown, None, None, f"unknown import kind {kind!r}: use customers or events")])
    try:
        reader = source_for(file)
    except UnknownConnector as exc:
        raise UserInputError([Problem(shown, None, None, str(exc))]) from None
    if not file.is_file():
        raise UserInputError([Problem(shown, None, None, "file not found")])
    result = ImportResult(kind=kind)
    try:
        if reader_process or (reader_process is None and file.stat().st_size >= READER_PROCESS_BYTES):
            from engine.ingest.reader_process import parsed_batches

            parsed = parsed_batches(file, kind, result, BATCH, now, topics)
        else:
            rows = reader.rows(file, REQUIRED[kind])
            parsed = batches(parse_rows(rows, kind, reader.untyped, shown, result, now, topics), BATCH)
        _write_all(store, parsed, result, path=shown, now=now, skip_invalid=skip_invalid, on_progress=on_progress)
    except SourceError as exc:
        raise UserInputError([Problem(shown, exc.line, None, str(exc))]) from None
    except UnicodeDecodeError as exc:
        raise UserInputError([Problem(shown, None, None, f"not UTF-8 text: {exc.reason}")]) from None
    try:
        store.analyze(customers if kind == "customers" else events)
    except sa.exc.DBAPIError as exc:
        # The rows are committed: a statistics refresh that fails (a statement timeout, a lock)
        # makes later queries slower until autovacuum catches up, not the import a failure.
        result.statistics = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    return result
