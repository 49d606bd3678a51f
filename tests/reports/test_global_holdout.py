"""`limits.global_holdout`: a control group no campaign contacts, and the programme's lift on it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from engine.audience.assignment import in_global_holdout
from engine.cli.main import main
from engine.delivery.occurrence import run_occurrence
from engine.reports.dryrun import dry_run
from engine.store.tables import deliveries
from tests.support.helpers import Clock, email_campaign, make_runner, write_workspace
from tests.support.store import seed

AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def shoppers(n: int) -> list[dict]:
    return [{"id": f"c{i:03d}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"} for i in range(n)]


def test_the_global_control_group_is_never_contacted_by_any_campaign(store, tmp_path):
    seed(store, customers=shoppers(200))
    ws = write_workspace(
        tmp_path, [email_campaign("one"), email_campaign("two")], config={"limits": {"global_holdout": "25%"}}
    )
    control = {c["id"] for c in shoppers(200) if in_global_holdout(c["id"], 25)}
    assert 20 < len(control) < 80
    with store.engine.connect() as conn:
        planned = dry_run(conn, ws, ws.select(), AT).as_json()
    for plan in planned["campaigns"]:
        assert plan["excluded"]["global_holdout"] == len(control)
        assert not control & set(plan["customers"])
    for campaign in ws.select():
        run_occurrence(make_runner(ws, store, Clock(AT)), campaign, AT)
    with store.engine.connect() as conn:
        reached = set(conn.execute(sa.select(deliveries.c.customer_id)).scalars())
    assert reached and not reached & control  # no row, no message, for either campaign


def test_without_a_global_holdout_the_dry_run_keeps_its_four_exclusions(store, tmp_path):
    seed(store, customers=shoppers(5))
    ws = write_workspace(tmp_path, [email_campaign()])
    with store.engine.connect() as conn:
        plan = dry_run(conn, ws, ws.select(), AT).as_json()["campaigns"][0]
    assert set(plan["excluded"]) == {"no_consent", "cooldown", "holdout", "frequency_cap"}


def test_report_global_compares_everyone_else_with_the_control_group(workspace_dir):
    runner = CliRunner()
    assert runner.invoke(main, ["--workspace", str(workspace_dir), "demo", "--customers", "400"]).exit_code == 0
    config = workspace_dir / "config.yaml"
    refused = runner.invoke(main, ["--workspace", str(workspace_dir), "report", "--global"])
    assert refused.exit_code == 2 and "no global control group: set limits.global_holdout" in refused.stderr
    settings = yaml.safe_load(config.read_text())
    settings.setdefault("limits", {})["global_holdout"] = "20%"
    config.write_text(yaml.safe_dump(settings))
    result = runner.invoke(
        main, ["--workspace", str(workspace_dir), "report", "--global", "--since", "60d", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    from engine.store import open_store

    store = open_store(f"sqlite:///{workspace_dir / 'nudge.db'}", create=False)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with store.engine.connect() as conn:
        buyers = set(
            conn.execute(
                sa.text("select distinct customer_id from events where type = 'purchase' and occurred_at > :since"),
                {"since": now - timedelta(days=60)},
            ).scalars()
        )
        everyone = list(conn.execute(sa.text("select id from customers")).scalars())
    store.dispose()
    control = [c for c in everyone if in_global_holdout(c, 20)]
    rest = [c for c in everyone if not in_global_holdout(c, 20)]
    assert data["holdout"]["customers"] == len(control) and data["contacted"]["customers"] == len(rest)
    assert data["holdout"]["converted"] == len(buyers & set(control))
    assert data["contacted"]["converted"] == len(buyers & set(rest))
    assert data["lift"] is not None and len(data["lift"]["ci95"]) == 2
