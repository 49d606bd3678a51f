"""Migrations applied to a store that already holds data, on both databases."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic import command

from engine.ingest.bulk import event_record, insert_events
from engine.store import open_store
from engine.store.db import _alembic_config
from engine.store.tables import customers, events
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
