"""`nudge send-test`: the real connector, one test address, nothing recorded."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli.main import main
from engine.store import open_store
from engine.store.tables import coupons, deliveries
from tests.support.helpers import email_campaign, write_workspace
from tests.support.smtpserver import SmtpServer
from tests.support.store import seed
from tests.support.tokens import readable

AT = "2026-06-01T09:00:00+00:00"


def nudge(workspace_dir, *args, env=None):
    return CliRunner().invoke(main, ["--workspace", str(workspace_dir), *args], env=env)


def test_a_test_send_reaches_only_the_test_address_and_records_nothing(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "300", "--at", AT).exit_code == 0
    config = workspace_dir / "config.yaml"
    with SmtpServer() as sink:
        config.write_text(
            config.read_text().replace(
                "  connector: outbox                # outbox (.eml files) | smtp | sendgrid | a registered name",
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
    token = received[0]["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1]
    assert readable(token, "marketer@shop.example", "send-test", "lapsed-buyers") == []
    store = open_store(f"sqlite:///{workspace_dir / 'nudge.db'}", create=False)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(coupons)).scalar_one() == 0
    store.dispose()


def test_a_test_send_for_a_named_customer_and_the_mistakes_it_refuses(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "300", "--at", AT).exit_code == 0
    named = nudge(workspace_dir, "send-test", "birthday", "--to", "me@shop.example", "--as", "demo-00001")
    assert named.exit_code == 0 and "rendered for demo-00001" in named.stdout
    [written] = (workspace_dir / "outbox").glob("test-birthday-*.eml")
    assert f"through outbox as {written.name}" in named.stdout
    unknown = nudge(workspace_dir, "send-test", "birthday", "--to", "me@shop.example", "--as", "nobody")
    assert unknown.exit_code == 2 and "no customer with id 'nobody'" in unknown.stderr
    bad = nudge(workspace_dir, "send-test", "birthday", "--to", "not-an-address")
    assert bad.exit_code == 2 and "--to: error: not an email address: 'not-an-address'" in bad.stderr
    tasks_only = nudge(workspace_dir, "send-test", "low-satisfaction", "--to", "me@shop.example")
    assert tasks_only.exit_code == 2 and "this campaign sends no email" in tasks_only.stderr


def test_each_test_send_has_its_own_file_and_a_customer_outside_the_audience_is_named_with_why(store, tmp_path):
    seed(
        store,
        customers=[
            {"id": "in", "email": "in@example.com", "email_opt_in": True, "country": "US"},
            {"id": "abroad", "email": "abroad@example.com", "email_opt_in": True, "country": "FR"},
            {"id": "quiet", "email": "quiet@example.com", "email_opt_in": False, "country": "US"},
        ],
    )
    root = tmp_path / "ws"
    write_workspace(
        root,
        [email_campaign("promo")],
        config={"store": store.url, "email": {"connector": "outbox", "outbox": {"dir": "outbox"}}},
    )
    runs = [nudge(root, "send-test", "promo", "--to", "me@shop.example", *extra) for extra in ([], ["--as", "in"])]
    assert all(r.exit_code == 0 and r.stderr == "" for r in runs), [r.output for r in runs]  # targeted: nothing to say
    outside = nudge(root, "send-test", "promo", "--to", "me@shop.example", "--as", "abroad")
    assert outside.exit_code == 0 and "rendered for abroad" in outside.stdout
    assert outside.stderr == (
        "--as: warning: abroad is not targeted by promo now (not_in_audience): "
        'attribute country eq US fails, value "FR"\n'
    )
    refused = nudge(root, "send-test", "promo", "--to", "me@shop.example", "--as", "quiet")
    assert refused.exit_code == 0 and refused.stderr == (
        "--as: warning: quiet is not targeted by promo now (no_consent): "
        "has not opted in to email (email_opt_in is false)\n"
    )
    files = sorted((root / "outbox").glob("*.eml"))
    assert len(files) == 4 and all(f.name.startswith("test-promo-") for f in files)  # none overwrote another
    assert all("To: me@shop.example" in f.read_text() for f in files)
