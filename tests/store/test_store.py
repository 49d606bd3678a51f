"""The store: migrations on first use, refusing a missing or stale store for read-only commands."""

from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.core.errors import RuntimeFailure
from engine.store import open_store
from engine.store.db import head_revision


def test_first_use_creates_every_table(store):
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"customers", "events", "deliveries", "coupons", "tasks", "suppressions", "occurrences"} <= tables
    assert store.current_revision() == head_revision()


def test_migrating_twice_is_harmless(store):
    store.migrate()
    assert store.current_revision() == head_revision()


def test_read_only_open_of_a_missing_sqlite_file_creates_nothing(tmp_path: Path):
    target = tmp_path / "absent.db"
    with pytest.raises(RuntimeFailure, match="no store at"):
        open_store(f"sqlite:///{target}", create=False)
    assert not target.exists()


def test_unreachable_postgres_is_a_clear_runtime_failure():
    with pytest.raises(RuntimeFailure, match="cannot reach the store"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2", create=False)


def test_a_read_only_store_refuses_writes_and_still_reads(store):
    from datetime import datetime

    from engine.store.tables import suppressions

    reader = open_store(store.url, create=False, read_only=True)
    try:
        with reader.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(suppressions)).scalar() == 0
        with pytest.raises(sa.exc.DBAPIError), reader.engine.begin() as conn:
            conn.execute(
                sa.insert(suppressions).values(email="x@example.com", reason="manual", created_at=datetime(2026, 1, 1))
            )
    finally:
        reader.dispose()
