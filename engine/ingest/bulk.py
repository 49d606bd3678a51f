"""Fast bulk inserts of events, per database. Statements are SQLAlchemy Core, compiled once;
only the per-row parameter handling is done here, in a tight loop.

SQLite: the compiled INSERT … ON CONFLICT DO NOTHING through the driver's executemany, values
converted by the column types' own bind processors (what SQLAlchemy would store).
PostgreSQL: COPY into a temporary table, then INSERT … SELECT … ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from engine.store.tables import events

COLUMNS = ("event_key", "customer_id", "type", "occurred_at", "properties")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _sqlite(conn: Connection, rows: list[dict[str, Any]]) -> int:
    dialect = conn.dialect
    statement = sqlite.insert(events).on_conflict_do_nothing(index_elements=[events.c.event_key])
    compiled = statement.values({c: sa.bindparam(c) for c in COLUMNS}).compile(dialect=dialect)
    order = compiled.positiontup
    processors = {c: events.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in COLUMNS}
    when = processors["occurred_at"]
    driver = conn.connection.driver_connection
    assert order is not None and when is not None and driver is not None
    values = [
        tuple(
            when(r["occurred_at"])
            if name == "occurred_at"
            else _dumps(r["properties"])
            if name == "properties"
            else r[name]
            for name in order
        )
        for r in rows
    ]
    cursor = driver.cursor()
    before = driver.total_changes
    cursor.executemany(compiled.string, values)
    written = driver.total_changes - before
    cursor.close()
    return written


_STAGE = sa.Table(
    "nudge_events_stage",
    sa.MetaData(),
    *(sa.Column(c, sa.Text) for c in COLUMNS),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


def _postgresql(conn: Connection, rows: list[dict[str, Any]]) -> int:
    _STAGE.create(conn)
    raw = conn.connection.driver_connection
    assert raw is not None
    copy_sql = f"COPY {_STAGE.name} ({', '.join(COLUMNS)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
        for r in rows:
            copy.write_row(
                (r["event_key"], r["customer_id"], r["type"], r["occurred_at"].isoformat(), _dumps(r["properties"]))
            )
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
        .from_select(list(COLUMNS), select)
        .on_conflict_do_nothing(index_elements=[events.c.event_key])
        .returning(events.c.pk)
        .cte("inserted")
    )
    written = conn.execute(sa.select(sa.func.count()).select_from(inserted)).scalar_one()
    _STAGE.drop(conn)
    return written


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert events, skipping keys already stored; returns how many were new."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        return _postgresql(conn, rows)
    if conn.dialect.name == "sqlite":
        return _sqlite(conn, rows)
    statement = sa.insert(events)
    return conn.execute(statement, rows).rowcount
