"""Migrations applied to a store that already holds data, on both databases."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic import command

from engine.ingest.bulk import event_record, insert_events
from engine.store import open_store
from engine.store.db import _alembic_config
from engine.store.tables import coupons, customers, deliveries, events, tasks
from tests.support.pgserver import create_database

AT = datetime(2026, 6, 1, 9, 0)


def _event(key: str) -> dict:
    return {"event_key": key, "customer_id": "c1", "type": "add_to_cart", "occurred_at": AT, "properties": {}}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_0008_events_stored_before_have_no_transaction_and_new_ones_their_writer(kind, tmp_path, request):
    url = (
        f"sqlite:///{tmp_path / 'store.db'}"
        if kind == "sqlite"
        else create_database(request.getfixturevalue("pg_admin_url"))
    )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0007")
        conn.execute(sa.insert(customers).values(id="c1", attributes={}, updated_at=AT))
        conn.execute(sa.insert(events).values(_event("old")))  # names no column 0007 lacks
    engine.dispose()
    store = open_store(url, create=True)
    with store.engine.begin() as conn:
        assert insert_events(conn, [event_record(_event("new"))]) == 1
        writer = (
            conn.execute(sa.select(sa.cast(sa.func.pg_current_xact_id(), sa.Text))).scalar()
            if kind == "postgresql"
            else None
        )
    with store.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(events.c.event_key, sa.cast(events.c.xid, sa.Text))).all())
    store.dispose()
    assert stored == {"old": None, "new": writer}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_0010_keeps_every_row_when_it_rebuilds_the_ledger(kind, tmp_path, request):
    """0010 rebuilds `deliveries` on SQLite (a unique constraint changes): with foreign keys on,
    dropping the old table would cascade into the coupons and tasks that point at it."""
    url = (
        f"sqlite:///{tmp_path / 'store.db'}"
        if kind == "sqlite"
        else create_database(request.getfixturevalue("pg_admin_url"))
    )
    engine = sa.create_engine(url)
    if kind == "sqlite":  # as every nudge connection has it (engine/store/db.py)
        sa.event.listen(engine, "connect", lambda connection, _: connection.execute("PRAGMA foreign_keys=ON"))
    with engine.begin() as conn:
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0009")
        _fill_0009(conn)
    before = _everything(engine)
    engine.dispose()
    store = open_store(url, create=True)
    after = _everything(store.engine)
    with store.engine.connect() as conn:
        channels = conn.execute(sa.select(deliveries.c.channel)).scalars().all()
    store.dispose()
    assert {name: len(rows) for name, rows in before.items()} == {
        "customers": 1,
        "events": 2,
        "deliveries": 1,
        "coupons": 1,
        "tasks": 1,
    }
    for name, rows in before.items():  # every row, every value it had, and the new columns beside
        assert [{k: row[k] for k in rows[0]} for row in after[name]] == rows, name
    assert channels == ["email"]  # before 0010 every message was an email


def _fill_0009(conn: sa.Connection) -> None:
    """A customer with events and a delivery that issued a coupon and a task, as 0009 stored them."""
    conn.execute(
        sa.insert(customers).values(
            id="c1", email="ann@example.com", phone="+8613800138000", email_opt_in=True, attributes={}, updated_at=AT
        )
    )
    conn.execute(sa.insert(events), [_event("e1"), _event("e2")])
    delivery = {
        "campaign": "promo",
        "customer_id": "c1",
        "occurrence": AT,
        "status": "sent",
        "email": "ann@example.com",
    }
    conn.execute(sa.insert(deliveries).values(**delivery, created_at=AT, updated_at=AT, sent_at=AT))
    issued = {"delivery_id": 1, "customer_id": "c1", "campaign": "promo", "created_at": AT}
    conn.execute(sa.insert(coupons).values(**issued, code="SAVE-1", name="promo", percent_off=10, expires_at=AT))
    conn.execute(
        sa.insert(tasks).values(**issued, action_index=2, queue="care", title="Call Ann", status="open", handoff="done")
    )


def _everything(engine: sa.Engine) -> dict[str, list[dict]]:
    with engine.connect() as conn:
        return {
            table.name: [
                dict(row._mapping)
                for row in conn.execute(sa.select(sa.text("*")).select_from(table).order_by(sa.text("1")))
            ]
            for table in (customers, events, deliveries, coupons, tasks)
        }
