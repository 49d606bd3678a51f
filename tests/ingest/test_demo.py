"""`nudge demo` builds a synthetic shop, and refuses to put one beside real customers."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli.main import main as cli
from engine.core.errors import Refused
from engine.ingest.demo import build_demo
from engine.store.tables import customers
from tests.support.store import NOW, seed


def count(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one()


def test_a_store_with_real_customers_is_refused_without_force(store):
    seed(store, customers=[{"id": "real-1", "email": "ann@shop.example", "email_opt_in": True}])
    with pytest.raises(Refused, match="1 customers that are not demo customers"):
        build_demo(store, NOW, size=50)
    assert count(store) == 1  # nothing added
    build_demo(store, NOW, size=50, force=True)
    assert count(store) == 51
    build_demo(store, NOW, size=40, force=True)  # a rebuild replaces the demo, never the real one
    assert count(store) == 41


def test_a_demo_store_is_rebuilt_without_asking(store):
    build_demo(store, NOW, size=30)
    build_demo(store, NOW, size=20)
    assert count(store) == 20


def test_the_command_says_why_and_exits_2(workspace_dir):
    runner = CliRunner()
    at = ["--at", NOW.isoformat()]
    assert runner.invoke(cli, ["--workspace", str(workspace_dir), "demo", "--customers", "30", *at]).exit_code == 0
    real = workspace_dir / "real.csv"
    real.write_text("id,email,email_opt_in\nreal-1,ann@shop.example,true\n")
    assert runner.invoke(cli, ["--workspace", str(workspace_dir), "import", "customers", str(real)]).exit_code == 0
    refused = runner.invoke(cli, ["--workspace", str(workspace_dir), "demo", "--customers", "30", *at])
    assert refused.exit_code == 2
    assert "error: the store holds 1 customers that are not demo customers" in refused.output
    assert "--force" in refused.output and "Traceback" not in refused.output
    forced = runner.invoke(cli, ["--workspace", str(workspace_dir), "demo", "--customers", "30", "--force", *at])
    assert forced.exit_code == 0, forced.output
