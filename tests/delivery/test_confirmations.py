"""Double opt-in end to end, on both databases: a customer imported opted in gets exactly one
confirmation email from `nudge run` (and from a daemon tick), the /confirm link in it confirms the
address only when its button is pressed, and the consent log says when."""

from __future__ import annotations

import email
import re
from datetime import datetime, timedelta, timezone
from email import policy
from pathlib import Path

import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from werkzeug.test import Client

from engine.cli.main import main
from engine.delivery.confirmations import CONFIRM_CAMPAIGN
from engine.delivery.daemon import Daemon
from engine.messages.unsubscribe import sign
from engine.store.consent import log_for
from engine.store.tables import customers, deliveries
from engine.web.serve import App
from engine.workspace.loader import load_workspace
from tests.support.helpers import Clock, make_runner, write_workspace
from tests.support.store import ROOT

SECRET = "a-test-secret-for-double-opt-in"
ENV = {"NUDGE_SECRET": SECRET}
TEMPLATES = ("confirm_email.html.j2", "confirm_email.zh-CN.html.j2")  # as nudge init writes them
CONFIRM_LINK = re.compile(r"http://127\.0\.0\.1:8025/confirm/([A-Za-z0-9_-]+)")


def workspace(root: Path, store_url: str, double_opt_in: bool = True) -> Path:
    """A shop with one campaign (for nobody: this is about the confirmation) and the real templates."""
    write_workspace(
        root,
        [
            {
                "campaign": "promo",
                "schedule": "0 9 * * *",
                "audience": {"attribute": "country", "eq": "FR"},
                "actions": [{"email": {"template": "hello.html.j2", "subject": "Hello"}}],
            }
        ],
        config={"store": store_url, "consent": {"double_opt_in": double_opt_in}},
        templates={
            "hello.html.j2": "<p>Hello</p>",
            **{name: (ROOT / "templates" / name).read_text() for name in TEMPLATES},
        },
    )
    return root


def nudge(ws: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--workspace", str(ws), *args], env=ENV, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def import_customers(ws: Path, rows: str) -> None:
    (ws / "customers.csv").write_text("id,email,email_opt_in,first_name,locale,country\n" + rows)
    nudge(ws, "import", "customers", str(ws / "customers.csv"))


def confirmations(ws: Path) -> list[email.message.EmailMessage]:
    found = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in (ws / "outbox").glob("*.eml")]
    return [m for m in found if m["X-Nudge-Campaign"] == CONFIRM_CAMPAIGN]


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def confirmed_at(store, customer: str = "c1") -> datetime | None:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(customers.c.email_confirmed_at).where(customers.c.id == customer)).scalar()


def test_import_run_confirm_link_and_the_consent_log(store, tmp_path):
    ws = workspace(tmp_path / "ws", store.url)
    people = "c1,ann@example.com,true,Ann,en-US,US\nc2,bob@example.com,false,Bob,en-US,US\n"
    import_customers(ws, people + "c3,cy@example.com,true,Cy,en-US,US\n")
    with store.engine.begin() as conn:  # Cy confirmed already (before double opt-in was turned on)
        conn.execute(sa.update(customers).where(customers.c.id == "c3").values(email_confirmed_at=datetime(2026, 1, 1)))
    nudge(ws, "run")
    [message] = confirmations(ws)  # Ann only: Bob did not opt in, Cy is confirmed
    assert message["To"] == "ann@example.com" and message["Subject"] == "Please confirm your email address"
    assert "Confirm my address" in message.get_body(preferencelist=("html",)).get_content()
    nudge(ws, "run")
    assert len(confirmations(ws)) == 1  # never twice
    token = CONFIRM_LINK.search(text_of(message)).group(1)
    web = Client(App(store, SECRET.encode(), None, lambda: datetime.now(timezone.utc)))
    page = web.get(f"/confirm/{token}")
    assert page.status_code == 200 and "Confirm my address" in page.get_data(as_text=True)
    assert "a***@example.com" in page.get_data(as_text=True)
    assert confirmed_at(store) is None  # a GET alone (a mail scanner opening links) changes nothing
    done = web.post(f"/confirm/{token}")
    assert done.status_code == 200 and "is confirmed" in done.get_data(as_text=True)
    assert confirmed_at(store) is not None
    with store.engine.connect() as conn:
        entries = [e for e in log_for(conn, "c1") if e["change"] == "confirmation"]
    assert [(e["source"], e["channel"], e["new_value"], e["address"]) for e in entries] == [
        ("confirmation", "email", "true", "ann@example.com")
    ]
    assert "already confirmed" in web.post(f"/confirm/{token}").get_data(as_text=True)
    nudge(ws, "run")
    assert len(confirmations(ws)) == 1
    with store.engine.connect() as conn:
        [row] = conn.execute(sa.select(deliveries).where(deliveries.c.campaign == CONFIRM_CAMPAIGN)).all()
    assert (row.status, row.channel, row.counts_toward_cap) == ("sent", "email", False)


def test_a_chinese_customer_gets_the_chinese_confirmation(store, tmp_path):
    ws = workspace(tmp_path / "ws", store.url)
    import_customers(ws, "c1,li@example.cn,true,伟,zh-CN,CN\n")
    nudge(ws, "run")
    [message] = confirmations(ws)
    assert message["Subject"] == "请确认您的电子邮件地址" and "确认我的地址" in text_of(message)


def test_a_machine_with_a_long_host_name_still_sends_confirmations(store, tmp_path, monkeypatch):
    # Linux allows 64 characters; the rows a sender holds carry a token naming its process.
    monkeypatch.setattr("socket.gethostname", lambda: "nudge-daemon-" + "h" * 51)
    ws = workspace(tmp_path / "ws", store.url)
    import_customers(ws, "c1,ann@example.com,true,Ann,en-US,US\n")
    nudge(ws, "run")
    assert len(confirmations(ws)) == 1


def test_an_unsubscribe_link_or_an_old_address_confirms_nothing(store, tmp_path):
    ws = workspace(tmp_path / "ws", store.url)
    import_customers(ws, "c1,ann@example.com,true,Ann,en-US,US\n")
    web = Client(App(store, SECRET.encode(), None, lambda: datetime.now(timezone.utc)))
    now = datetime.now(timezone.utc)
    unsubscribe = sign(SECRET.encode(), "c1", "ann@example.com", "promo", now)
    assert web.post(f"/confirm/{unsubscribe}").status_code == 400
    old = sign(SECRET.encode(), "c1", "ann.old@example.com", CONFIRM_CAMPAIGN, now)
    assert web.post(f"/confirm/{old}").status_code == 410
    assert web.post("/confirm/garbage").status_code == 400
    assert confirmed_at(store) is None
    # A new address gets a confirmation of its own, once.
    nudge(ws, "run")
    import_customers(ws, "c1,ann.new@example.com,true,Ann,en-US,US\n")
    nudge(ws, "run")
    nudge(ws, "run")
    assert sorted(m["To"] for m in confirmations(ws)) == ["ann.new@example.com", "ann@example.com"]


def test_nothing_is_sent_without_double_opt_in_or_without_the_template(store, tmp_path):
    ws = workspace(tmp_path / "ws", store.url, double_opt_in=False)
    import_customers(ws, "c1,ann@example.com,true,Ann,en-US,US\n")
    nudge(ws, "run")
    assert confirmations(ws) == []
    (ws / "config.yaml").write_text(
        yaml.safe_dump({"store": store.url, "timezone": "UTC", "consent": {"double_opt_in": True}})
    )
    (ws / "templates" / "confirm_email.html.j2").unlink()
    result = CliRunner().invoke(main, ["--workspace", str(ws), "run"], env=ENV)
    assert result.exit_code == 1 and "templates/confirm_email.html.j2 is missing" in result.output
    with store.engine.connect() as conn:  # nothing planned: a row now would fail and never be retried
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 0


def test_the_daemon_sends_confirmations_on_its_ticks(store, tmp_path):
    ws = workspace(tmp_path / "ws", store.url)
    import_customers(ws, "c1,ann@example.com,true,Ann,en-US,US\n")
    clock = Clock(datetime.now(timezone.utc))
    daemon = Daemon(runner=make_runner(load_workspace(ws), store, clock, environ=ENV), started_at=clock.now)
    for _ in range(2):
        daemon.step(clock.now)
        clock.advance(timedelta(minutes=1))
    [message] = confirmations(ws)
    assert message["To"] == "ann@example.com"
