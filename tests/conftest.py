"""Fixtures: every store test runs on SQLite and on a real PostgreSQL started for the session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from engine.ingest.importer import import_rows
from engine.store import Store, open_store

from .pgserver import PgServer, create_database

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    external = os.environ.get("NUDGE_TEST_PG_URL")
    if external:
        yield external
        return
    server = PgServer().start()
    try:
        yield server.url()
    finally:
        server.stop()


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = create_database(request.getfixturevalue("pg_admin_url"))
    return open_store(url, create=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = make_store(request.param, tmp_path, request)
    yield opened
    opened.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'store.db'}", create=True)
    yield opened
    opened.dispose()


def seed(store: Store, customers: list[dict[str, Any]] = (), events: list[dict[str, Any]] = ()) -> None:
    """Load rows through the real importer (typed values, as JSON Lines would give them)."""
    if customers:
        import_rows(store, "customers", enumerate(customers, 1), path="<seed>", untyped=False, now=NOW)
    if events:
        rows = [{**e, "occurred_at": e["occurred_at"].isoformat() if isinstance(e["occurred_at"], datetime)
                 else e["occurred_at"]} for e in events]
        import_rows(store, "events", enumerate(rows, 1), path="<seed>", untyped=False, now=NOW)


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Path:
    """A copy of the demo workspace (config, rules, templates) with its own SQLite store."""
    target = tmp_path / "ws"
    target.mkdir()
    shutil.copytree(ROOT / "rules", target / "rules")
    shutil.copytree(ROOT / "templates", target / "templates")
    (target / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    return target


@pytest.fixture
def pg_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = make_store("postgresql", tmp_path, request)
    yield opened
    opened.dispose()
