"""One batch of customer rows into the store: the upsert, the topic choices (`subscriptions`), and a
consent-log entry for every change of consent the batch makes (email and SMS opt-in and
unsubscribe, each topic), with the value before and after. Set-based: one query reads what the
batch's customers had, then one statement per table writes; nothing is asked per row. A row that
changes nothing (a file imported twice) logs nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from engine.core.channels import Channel, ConsentChange
from engine.core.clock import naive_utc
from engine.ingest.bulk import copy_rows, encode_json, insert_consent, stored_instant
from engine.ingest.rows import TOPICS
from engine.store import Store, dialect_insert
from engine.store.consent import ConsentEntry, as_text
from engine.store.tables import customers, subscriptions

# The consent columns a row may change: what changes, on which channel.
WATCHED = (
    ("email_opt_in", ConsentChange.OPT_IN, Channel.EMAIL),
    ("unsubscribed_at", ConsentChange.UNSUBSCRIBE, Channel.EMAIL),
    ("sms_opt_in", ConsentChange.OPT_IN, Channel.SMS),
    ("sms_unsubscribed_at", ConsentChange.UNSUBSCRIBE, Channel.SMS),
)
ADDRESS = {Channel.EMAIL: "email", Channel.SMS: "phone"}
# What a customer the store has not seen "had": nothing agreed to, every topic subscribed (SPEC:
# no choice means subscribed), so a new customer arriving opted in is logged as a change.
NEW_CUSTOMER = {"email_opt_in": False, "unsubscribed_at": None, "sms_opt_in": False, "sms_unsubscribed_at": None}


@dataclass
class Stored:
    """What the store held for one customer before the batch: consent columns and addresses, and
    the topic choices it has rows for (among the topics the batch names)."""

    columns: dict[str, Any]
    topics: dict[str, bool] = field(default_factory=dict)


def sqlite_write_lock(conn: Connection) -> None:
    """SQLite: take the store's write lock now, so that what is read next stays true until the
    commit (the driver begins a transaction only at the first write: a read before it could see a
    profile that an alias merges, i.e. deletes, or consent that another writer changes, before
    this transaction writes)."""
    driver = conn.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def write_customers(conn: Connection, store: Store, rows: list[dict[str, Any]], now: datetime, source: str) -> int:
    """Upsert one batch (one row per id) with its topic choices and log its changes of consent
    under `source`, in the caller's transaction; returns how many consent entries were appended."""
    stamp = naive_utc(now)
    # Only what the batch names is read: an attribute update (no consent column, no topic) reads nothing.
    named = [column for column in NEW_CUSTOMER if any(column in row for row in rows)]
    before = _stored(conn, store, rows, named) if named or any(TOPICS in row for row in rows) else {}
    _upsert_customers(conn, store, rows, now)
    _upsert_topics(conn, store, rows, before, stamp)
    return insert_consent(conn, _changes(rows, before, source), stamp)


def _stored(conn: Connection, store: Store, rows: list[dict[str, Any]], named: list[str]) -> dict[str, Stored]:
    """One query: the batch's customers as stored (the consent columns it names, and the address
    of their channel), joined to their rows for the topics it names. Locked until the commit
    (PostgreSQL: the rows, as the upsert would; SQLite: the write lock), so that a concurrent
    identify cannot change them between this read and the write."""
    topics = sorted({topic for row in rows for topic in row.get(TOPICS, ())})
    addresses = {ADDRESS[channel] for column, _, channel in WATCHED if column in named}
    read = ["id", *sorted(addresses), *named]
    columns = [customers.c[name] for name in read]
    if topics:
        joined = customers.outerjoin(
            subscriptions,
            sa.and_(subscriptions.c.customer_id == customers.c.id, subscriptions.c.topic.in_(topics)),
        )
        query = sa.select(*columns, subscriptions.c.topic, subscriptions.c.subscribed).select_from(joined)
    else:
        query = sa.select(*columns)
    ids = [row["id"] for row in rows]
    if store.is_sqlite:
        query = query.where(customers.c.id.in_(ids))
        sqlite_write_lock(conn)
    else:
        # One array parameter, not an IN list of a batch's thousands: psycopg rewrote that query's
        # placeholders in Python on every batch, a quarter of the PostgreSQL writer's time.
        query = query.where(customers.c.id == sa.any_(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.String))))
        query = query.with_for_update(of=customers, key_share=True)  # FOR NO KEY UPDATE, as the upsert takes
    found: dict[str, Stored] = {}
    width = len(read)
    for record in conn.execute(query):  # by position: this runs for every row of an import
        stored = found.get(record[0])
        if stored is None:
            stored = found[record[0]] = Stored(dict(zip(read, record[:width], strict=True)))
        if topics and record[width] is not None:
            stored.topics[record[width]] = record[width + 1]
    return found


def _upsert_customers(conn: Connection, store: Store, rows: list[dict[str, Any]], now: datetime) -> None:
    # executemany needs one column set per statement: group rows by the fields they name.
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        values = {**row, "updated_at": now}
        values.pop(TOPICS, None)  # not a column: written to subscriptions
        groups.setdefault(frozenset(values), []).append(values)
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
        if "email_opt_in" not in keys:
            keys = keys | {"email_opt_in"}
            group = [{**row, "email_opt_in": False} for row in group]
        if store.dialect == "postgresql":
            _copy_upsert(conn, stmt, updates, keys, group)
        else:
            _execute_many(conn, stmt.on_conflict_do_update(index_elements=[customers.c.id], set_=updates), keys, group)


def _copy_upsert(
    conn: Connection, stmt: postgresql.Insert, updates: dict[str, Any], keys: frozenset[str], rows: list[dict[str, Any]]
) -> None:
    """PostgreSQL: the rows COPYed into a temporary table typed as `customers`, then one INSERT …
    SELECT … ON CONFLICT DO UPDATE. The named-parameter executemany it replaces cost a statement
    round of parsing and binding per row, several times the COPY (issue 25)."""
    names = [column.name for column in customers.columns if column.name in keys]
    stage = sa.Table(
        "nudge_customers_stage",
        sa.MetaData(),
        *(sa.Column(name, customers.c[name].type) for name in names),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    stage.create(conn)
    copy_rows(conn, stage.name, names, ([_copied(row[name]) for name in names] for row in rows))
    select = sa.select(*(stage.c[name] for name in names))
    upsert = stmt.from_select(names, select).on_conflict_do_update(index_elements=[customers.c.id], set_=updates)
    conn.execute(upsert)
    stage.drop(conn)


def _copied(value: Any) -> Any:
    """A row's value as COPY's text takes it: JSON text for the attributes, a time as naive UTC (the
    store's one form: `updated_at` arrives aware, the parsed times naive already)."""
    if type(value) is dict:
        return encode_json(value)
    if type(value) is datetime and value.tzinfo is not None:
        return naive_utc(value)
    return value


def _processor(kind: sa.types.TypeEngine, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    """SQLAlchemy's bind processor for a column type; on SQLite a time as bulk.stored_instant
    writes it, the same text as SQLAlchemy's DATETIME processor at a fifth of its cost."""
    if dialect.name == "sqlite" and isinstance(kind, sa.DateTime):
        return _sqlite_instant
    return kind.dialect_impl(dialect).bind_processor(dialect)


def _sqlite_instant(value: datetime | None) -> str | None:
    if value is None:
        return None
    # SQLAlchemy writes the fields as they are, an offset dropped (`updated_at` arrives aware)
    return stored_instant(value.replace(tzinfo=None) if value.tzinfo is not None else value)


def _execute_many(conn: Connection, statement: sa.Insert, keys: frozenset[str], rows: list[dict[str, Any]]) -> None:
    """The statement for every row through the driver's executemany, each value made what
    SQLAlchemy would send (its own bind processor per column, looked up once): the compiled
    statement's per-row parameter handling cost more than the database's upsert. Parameters by position
    where the driver takes them so (SQLite), by name otherwise (psycopg)."""
    # column_keys: the columns the rows name, as SQLAlchemy compiles it for these rows (the rest
    # are left out of the INSERT, so their server defaults apply)
    compiled = statement.compile(dialect=conn.dialect, column_keys=sorted(keys))
    dialect = conn.dialect
    process = {k: _processor(customers.c[k].type, dialect) for k in keys}
    assert set(compiled.binds) == keys, "the upsert binds the row's columns only"
    if compiled.positiontup is not None:
        order = [(name, process[name]) for name in compiled.positiontup]
        values: list[Any] = [tuple(p(row[k]) if p else row[k] for k, p in order) for row in rows]
    else:
        pairs = list(process.items())
        values = [{k: p(row[k]) if p else row[k] for k, p in pairs} for row in rows]
    conn.exec_driver_sql(compiled.string, values)  # through SQLAlchemy still: its errors, its events


def _upsert_topics(
    conn: Connection, store: Store, rows: list[dict[str, Any]], before: dict[str, Stored], stamp: datetime
) -> None:
    """Store each choice that changes what the customer gets (no row: subscribed), as the
    preference page does (engine/store/subscriptions.py); a choice already in effect is not
    rewritten, so its updated_at stays the time it was made and a re-import writes nothing."""
    changed = []
    for row in rows:
        held = before[row["id"]].topics if row["id"] in before else {}
        for topic, subscribed in row.get(TOPICS, {}).items():
            if held.get(topic, True) != subscribed:
                changed.append(
                    {"customer_id": row["id"], "topic": topic, "subscribed": subscribed, "updated_at": stamp}
                )
    if not changed:
        return
    stmt = dialect_insert(store.dialect, subscriptions)
    updates = {"subscribed": stmt.excluded.subscribed, "updated_at": stmt.excluded.updated_at}
    index = [subscriptions.c.customer_id, subscriptions.c.topic]
    conn.execute(stmt.on_conflict_do_update(index_elements=index, set_=updates), changed)


def _changes(rows: list[dict[str, Any]], before: dict[str, Stored], source: str) -> list[ConsentEntry]:
    """A consent entry for each watched column and topic whose value the batch changes."""
    entries: list[ConsentEntry] = []
    for row in rows:
        stored = before.get(row["id"])
        old: dict[str, Any] = stored.columns if stored is not None else NEW_CUSTOMER
        for column, change, channel in WATCHED:
            if column in row and row[column] != old[column]:
                key = ADDRESS[channel]
                address: str | None = row[key] if key in row else old.get(key)
                entry = ConsentEntry(
                    row["id"], change, source, as_text(old[column]), as_text(row[column]), str(channel), None, address
                )
                entries.append(entry)
        held = stored.topics if stored is not None else {}
        for topic, subscribed in row.get(TOPICS, {}).items():
            was = held.get(topic, True)  # no row: subscribed
            if was != subscribed:
                entries.append(
                    ConsentEntry(row["id"], ConsentChange.TOPIC, source, as_text(was), as_text(subscribed), topic=topic)
                )
    return entries
