"""Fast bulk inserts of events and consent-log entries, per database. Statements are SQLAlchemy
Core, compiled once; rows arrive as ready records (text and JSON), so the per-row work here is the
driver's.

SQLite: the compiled INSERT … ON CONFLICT DO NOTHING through the driver's executemany. An initial
load into an empty table builds the secondary indexes once at the end (`indexes_deferred`).
PostgreSQL: COPY into a temporary table, then INSERT … SELECT … ON CONFLICT DO NOTHING.
Consent entries (append-only, nothing to conflict with): the compiled INSERT, or COPY straight in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from engine.store.consent import ConsentEntry
from engine.store.tables import consent_log, events

# An event record: these columns in this order; occurred_at as naive-UTC text, properties as JSON.
RECORD = ("event_key", "customer_id", "type", "occurred_at", "properties")
CUSTOMER = RECORD.index("customer_id")
SORT_CACHE_KIB = -32768
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)
# JSONEncoder.encode builds the C encoder afresh on every call, half of what encoding one event's
# properties cost: built once here, with the same settings. No circular check (markers None): a
# row's values come from a parser, which cannot make a cycle.
_c_encoder = (
    c_make_encoder(None, str, encode_basestring, None, ":", ",", False, False, True) if c_make_encoder else None
)


def encode_json(value: Any) -> str:
    """JSON text of a parsed value (compact, not ASCII-escaped), through the C encoder."""
    return "".join(_c_encoder(value, 0)) if _c_encoder is not None else _encoder.encode(value)


def stored_instant(moment: datetime) -> str:
    """A naive UTC time as SQLAlchemy stores it on SQLite (and PostgreSQL's COPY reads it)."""
    return moment.isoformat(" ", "microseconds")  # positional: keywords cost twice as much here


def event_record(row: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """A validated event row (rows.event_row) → the record the bulk inserts write."""
    return (
        row["event_key"],
        row["customer_id"],
        row["type"],
        stored_instant(row["occurred_at"]),
        encode_json(row["properties"]),
    )


def _sqlite(conn: Connection, records: list[tuple]) -> int:
    statement = sqlite.insert(events).on_conflict_do_nothing(index_elements=[events.c.event_key])
    compiled = statement.values({c: sa.bindparam(c) for c in RECORD}).compile(dialect=conn.dialect)
    driver = conn.connection.driver_connection
    assert compiled.positiontup == list(RECORD) and driver is not None
    cursor = driver.cursor()
    before = driver.total_changes
    cursor.executemany(compiled.string, records)
    written = driver.total_changes - before
    cursor.close()
    return written


_STAGE = sa.Table(
    "nudge_events_stage",
    sa.MetaData(),
    *(sa.Column(c, sa.Text) for c in RECORD),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


def copy_rows(conn: Connection, table: str, columns: Sequence[str], records: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL: the records into `table` through COPY FROM STDIN, in the caller's transaction."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for record in records:
            copy.write_row(record)


def _postgresql(conn: Connection, records: list[tuple]) -> int:
    _STAGE.create(conn)
    copy_rows(conn, _STAGE.name, RECORD, records)
    select = sa.select(
        _STAGE.c.event_key,
        _STAGE.c.customer_id,
        _STAGE.c.type,
        sa.cast(_STAGE.c.occurred_at, sa.DateTime),
        sa.cast(_STAGE.c.properties, postgresql.JSONB),
    )
    # Counted through RETURNING in a CTE: the driver's rowcount is not reliable for INSERT … SELECT here.
    inserted = (
        postgresql.insert(events)
        .from_select(list(RECORD), select)
        .on_conflict_do_nothing(index_elements=[events.c.event_key])
        .returning(events.c.pk)
        .cte("inserted")
    )
    written = conn.execute(sa.select(sa.func.count()).select_from(inserted)).scalar_one()
    _STAGE.drop(conn)
    return written


def insert_events(conn: Connection, records: list[tuple]) -> int:
    """Insert event records, skipping keys already stored; returns how many were new."""
    if not records:
        return 0
    if conn.dialect.name == "postgresql":
        return _postgresql(conn, records)
    return _sqlite(conn, records)


@contextmanager
def indexes_deferred(conn: Connection) -> Iterator[None]:
    """On SQLite, load an empty events table without its secondary indexes and build them at the
    end: one sorted pass instead of a random B-tree insert per row and index. Inside the caller's
    transaction, so a failed import rolls the indexes back with the rows. Not on PostgreSQL, where
    dropping an index would lock readers (the daemon) out of the table until the import commits;
    SQLite readers keep reading the last committed state either way."""
    empty = conn.execute(sa.select(events.c.pk).limit(1)).first() is None
    deferred = [index for index in events.indexes if not index.unique] if conn.dialect.name == "sqlite" else []
    if not empty or not deferred:
        yield
        return
    driver = conn.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        # The sqlite3 module opens a transaction only before DML: DDL first would commit at once.
        driver.execute("BEGIN")
    for index in deferred:
        index.drop(conn)
    yield
    # The sort that builds an index takes as much memory again as the page cache: shrink the
    # cache for it, so the import's peak stays near one cache, not two.
    conn.exec_driver_sql(f"PRAGMA cache_size={SORT_CACHE_KIB}")
    for index in deferred:
        index.create(conn)


CONSENT = ("customer_id", "at", "channel", "topic", "change", "old_value", "new_value", "source", "address")


def insert_consent(conn: Connection, entries: Sequence[ConsentEntry], at: datetime) -> int:
    """engine.store.consent.append for the thousands of entries an import batch can make (a file of
    new customers arriving opted in): the same rows, without SQLAlchemy's per-row parameter work,
    which cost more than the inserts. Returns how many."""
    if not entries:
        return 0
    stamp = stored_instant(at)
    records = [
        (e.customer_id, stamp, e.channel, e.topic, str(e.change), e.old, e.new, e.source[:255], e.address)
        for e in entries
    ]
    if conn.dialect.name == "postgresql":
        copy_rows(conn, consent_log.name, CONSENT, records)
        return len(records)
    driver = conn.connection.driver_connection
    assert driver is not None
    statement = sa.insert(consent_log).values({c: sa.bindparam(c) for c in CONSENT}).compile(dialect=conn.dialect)
    assert statement.positiontup == list(CONSENT)
    cursor = driver.cursor()
    cursor.executemany(statement.string, records)
    cursor.close()
    return len(records)
