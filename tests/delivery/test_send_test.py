"""`nudge send-test`: the real connector, one test address, nothing recorded."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli.main import main
from engine.store import open_store
from engine.store.tables import coupons, deliveries
from tests.support.smtpserver import SmtpServer

AT = "2026-06-01T09:00:00+00:00"


def nudge(workspace_dir, *args, env=None):
    return CliRunner().invoke(main, ["--workspace", str(workspace_dir), *args], env=env)


def test_a_test_send_reaches_only_the_test_address_and_records_nothing(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "300", "--at", AT).exit_code == 0
    config = workspace_dir / "config.yaml"
    with SmtpServer() as sink:
        config.write_text(
            config.read_text().replace(
                "  connector: outbox",
                f"  connector: smtp\n  unsubscribe_url: https://shop.example/u\n"
                f"  smtp: {{host: 127.0.0.1, port: {sink.port}}}",
            )
        )
        result = nudge(
            workspace_dir, "send-test", "lapsed-buyers", "--to", "marketer@shop.example", env={"NUDGE_SECRET": "s"}
        )
        received = list(sink.recorder.messages)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("sent: '[TEST] ") and "sent to marketer@shop.example through smtp" in result.stdout
    assert [m["To"] for m in received] == ["marketer@shop.example"]
    assert received[0]["Subject"].startswith("[TEST] ") and "BACK-PREVIEW" in received[0].get_body().get_content()
    store = open_store(f"sqlite:///{workspace_dir / 'nudge.db'}", create=False)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(coupons)).scalar_one() == 0
    store.dispose()


def test_a_test_send_for_a_named_customer_and_the_mistakes_it_refuses(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "300", "--at", AT).exit_code == 0
    named = nudge(workspace_dir, "send-test", "birthday", "--to", "me@shop.example", "--as", "demo-00001")
    assert named.exit_code == 0 and "rendered for demo-00001" in named.stdout
    assert (workspace_dir / "outbox" / "000000000000.eml").exists()
    unknown = nudge(workspace_dir, "send-test", "birthday", "--to", "me@shop.example", "--as", "nobody")
    assert unknown.exit_code == 2 and "no customer with id 'nobody'" in unknown.stderr
    bad = nudge(workspace_dir, "send-test", "birthday", "--to", "not-an-address")
    assert bad.exit_code == 2 and "--to: error: not an email address: 'not-an-address'" in bad.stderr
    tasks_only = nudge(workspace_dir, "send-test", "low-satisfaction", "--to", "me@shop.example")
    assert tasks_only.exit_code == 2 and "this campaign sends no email" in tasks_only.stderr
