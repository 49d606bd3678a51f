"""Many rows into one table in one statement, rows that are already there left alone.

PostgreSQL: each column's values as one array, spread back into rows by `unnest`. psycopg turns
every statement's named parameters into positional ones by parsing its text, in Python, and does
not cache a long text: a multi-row VALUES of a thousand ledger rows (15,000 parameters) cost
about 150 µs a row to build and parse, three times the insert itself; the array statement is a
few hundred characters whatever the number of rows (about 45 µs a row, server included).
SQLite: the driver's executemany, which binds each row without parsing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Row

from engine.store.db import dialect_insert

Rows = Sequence[Mapping[str, Any]]
Inserter = Callable[[Connection, sa.Table, Rows, Sequence[str], Sequence[Any]], list[Row]]


def insert_rows(
    conn: Connection,
    table: sa.Table,
    rows: Rows,
    *,
    unique: Sequence[str] = (),
    returning: Sequence[Any] = (),
) -> list[Row]:
    """Insert `rows` (each naming the same columns); with `unique`, a row whose key is already
    there is skipped. Returns the `returning` columns of the rows inserted, in no set order."""
    if not rows:
        return []
    return INSERTERS.get(conn.dialect.name, _executemany)(conn, table, rows, unique, returning)


def _executemany(
    conn: Connection, table: sa.Table, rows: Rows, unique: Sequence[str], returning: Sequence[Any]
) -> list[Row]:
    return _run(conn, dialect_insert(conn.dialect.name, table), unique, returning, list(rows))


def _arrays(
    conn: Connection, table: sa.Table, rows: Rows, unique: Sequence[str], returning: Sequence[Any]
) -> list[Row]:
    names = list(rows[0])
    arrays = [
        sa.bindparam(f"many_{name}", [row[name] for row in rows], type_=postgresql.ARRAY(_element(table.c[name].type)))
        for name in names
    ]
    spread = sa.func.unnest(*arrays).table_valued(*names).render_derived()
    statement = postgresql.insert(table).from_select(names, sa.select(*(spread.c[name] for name in names)))
    return _run(conn, statement, unique, returning, None)


def _run(conn: Connection, statement: Any, unique: Sequence[str], returning: Sequence[Any], rows: Any) -> list[Row]:
    if unique:
        statement = statement.on_conflict_do_nothing(index_elements=list(unique))
    if returning:
        return list(conn.execute(statement.returning(*returning), rows).all())
    conn.execute(statement, rows)
    return []


def _element(column_type: Any) -> Any:
    """The arrays' element type: text without its length, for an explicit cast to varchar(64)
    cuts a longer value silently, where the insert into the column refuses it."""
    return sa.Text() if isinstance(column_type, sa.String) else column_type


INSERTERS: dict[str, Inserter] = {"postgresql": _arrays}
