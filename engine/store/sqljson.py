"""Typed reads of one key of a JSON column, the same meaning on SQLite and PostgreSQL.

A value of the wrong JSON type reads as NULL instead of failing the whole query
(PostgreSQL would raise on casting ``"abc"`` to a number).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

NUMBER, TEXT, BOOLEAN = "number", "text", "boolean"


def _sqlite_path(key: str) -> ColumnElement:
    return sa.literal('$."' + key + '"')


def json_type(column: ColumnElement, key: str, dialect: str) -> ColumnElement:
    """The JSON type name of the value under key (NULL when absent)."""
    if dialect == "postgresql":
        return sa.func.jsonb_typeof(column.op("->")(sa.literal(key)))
    return sa.func.json_type(column, _sqlite_path(key))


def json_value(column: ColumnElement, key: str, kind: str, dialect: str) -> ColumnElement:
    """The value under key as a SQL number, text or boolean; NULL when absent or of another type."""
    kind_type = json_type(column, key, dialect)
    if dialect == "postgresql":
        text = column.op("->>")(sa.literal(key))
        if kind == NUMBER:
            return sa.case((kind_type == "number", sa.cast(text, sa.Float)))
        if kind == BOOLEAN:
            return sa.case((kind_type == "boolean", sa.cast(text, sa.Boolean)))
        return sa.case((kind_type == "string", text))
    raw = sa.func.json_extract(column, _sqlite_path(key))
    if kind == NUMBER:
        return sa.case((kind_type.in_(["integer", "real"]), raw), else_=sa.null())
    if kind == BOOLEAN:
        return sa.case((kind_type == "true", sa.true()), (kind_type == "false", sa.false()), else_=sa.null())
    return sa.case((kind_type == "text", raw), else_=sa.null())


def json_raw(column: ColumnElement, key: str, dialect: str) -> ColumnElement:
    """The value under key as the database compares JSON values (same type and value are equal)."""
    if dialect == "postgresql":
        return column.op("->")(sa.literal(key))
    return sa.func.json_extract(column, _sqlite_path(key))


def json_same(column: ColumnElement, other: ColumnElement, key: str, dialect: str) -> ColumnElement:
    """Both hold the same non-null value under key, of the same JSON type (so `true` is not `1`
    on SQLite either)."""
    return sa.and_(
        json_present(other, key, dialect),
        _kind_of(column, key, dialect) == _kind_of(other, key, dialect),
        json_raw(column, key, dialect) == json_raw(other, key, dialect),
    )


def _kind_of(column: ColumnElement, key: str, dialect: str) -> ColumnElement:
    """The JSON type with SQLite's integer and real as one `number`, as PostgreSQL has it."""
    found = json_type(column, key, dialect)
    if dialect == "postgresql":
        return found
    return sa.case((found.in_(["integer", "real"]), "number"), (found.in_(["true", "false"]), "boolean"), else_=found)


def json_present(column: ColumnElement, key: str, dialect: str) -> ColumnElement:
    """True when key holds a non-null value."""
    kind_type = json_type(column, key, dialect)
    return sa.and_(kind_type.is_not(None), kind_type != "null")
