"""The store: migrations on first use, refusing a missing or stale store for read-only commands."""

from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.core.errors import RuntimeFailure
from engine.store import open_store
from engine.store.db import head_revision, migrations_head


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


def test_migrate_warns_when_postgresql_may_lose_acknowledged_commits(workspace_dir, pg_admin_url):
    from click.testing import CliRunner

    from engine.cli.main import main
    from tests.support.pgserver import create_database

    config = workspace_dir / "config.yaml"
    config.write_text(config.read_text().replace("sqlite:///nudge.db", create_database(pg_admin_url)))
    result = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "migrate"])
    assert result.exit_code == 0
    # The test server runs with synchronous_commit=off for speed: exactly what production must not.
    assert "warning: PostgreSQL runs with synchronous_commit = off" in result.stderr


def test_sqlite_has_no_durability_warning(sqlite_store):
    assert sqlite_store.durability_warning() is None


def test_the_head_revision_constant_is_the_newest_migration():
    assert head_revision() == migrations_head()  # add a migration: update HEAD_REVISION beside it


def test_a_statement_sqlite_refuses_is_no_outage_but_a_file_it_cannot_open_is(tmp_path):
    from engine.store.db import is_outage

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn, pytest.raises(sa.exc.OperationalError) as refused:
        conn.execute(sa.text("SELECT json_extract('{broken', '$.a')"))  # a row holding bad JSON
    assert "malformed JSON" in str(refused.value) and not is_outage(refused.value)
    gone = sa.create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'folder.db'}")
    with pytest.raises(sa.exc.OperationalError) as unreachable:
        gone.connect()
    assert is_outage(unreachable.value)
