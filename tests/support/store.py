"""Stores for tests: SQLite in a temporary folder or a fresh database on the session's PostgreSQL,
seeded through the real importer."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from engine.ingest.importer import import_rows
from engine.store import Store, open_store
from tests.support.pgserver import create_database

ROOT = Path(__file__).resolve().parent.parent.parent
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = create_database(request.getfixturevalue("pg_admin_url"))
    return open_store(url, create=True)


def seed(store: Store, customers: list[dict[str, Any]] = (), events: list[dict[str, Any]] = ()) -> None:
    """Load rows through the real importer (typed values, as JSON Lines would give them)."""
    if customers:
        import_rows(store, "customers", enumerate(customers, 1), path="<seed>", untyped=False, now=NOW)
    if events:
        rows = [
            {
                **e,
                "occurred_at": e["occurred_at"].isoformat()
                if isinstance(e["occurred_at"], datetime)
                else e["occurred_at"],
            }
            for e in events
        ]
        # A test may seed events that happen later in its story: import them as of the last one,
        # as a store receiving them then would (events more than 24 h ahead are refused).
        now = max([NOW, *(_instant(r["occurred_at"]) for r in rows)])
        import_rows(store, "events", enumerate(rows, 1), path="<seed>", untyped=False, now=now)


def _instant(text: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:  # a test of a bad time: the importer says what is wrong with it
        return NOW
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
