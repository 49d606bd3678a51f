"""Fixtures: every store test runs on SQLite and on a real PostgreSQL started for the session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store import Store, open_store
from tests.support.pgserver import PgServer
from tests.support.store import ROOT, make_store


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
