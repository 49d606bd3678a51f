"""A campaign on two channels, end to end through the command line, on both databases: customers
imported with their consents and topic choices, `nudge run`, then what each outbox holds and what
`nudge deliveries`, `nudge report` and `nudge customer` say."""

from __future__ import annotations

import email
import json
from email import policy
from pathlib import Path

from click.testing import CliRunner

from engine.cli.main import main
from tests.support.helpers import write_workspace

AT = "2026-06-01T09:00:00+00:00"
CAMPAIGN = {
    "campaign": "spring",
    "schedule": "0 9 * * *",
    "topic": "promotions",
    "audience": {"attribute": "country", "eq": "CN"},
    "actions": [
        {"coupon": {"name": "spring", "percent_off": 10, "valid_for": "7d"}},
        {"email": {"template": "spring.html.j2", "subject": "Spring, {{ customer.first_name }}"}},
        {"sms": {"text": "{{ customer.first_name }}, 10% off with {{ coupons.spring.code }}"}},
    ],
}
# texter: texts only · both: both · mailer: email only · leaver: both, but left the campaign's topic
# (and stays in the newsletter, which is not this campaign's).
CUSTOMERS = """id,first_name,email,email_opt_in,phone,sms_opt_in,country,topics.promotions,topics.newsletter
texter,Tex,texter@example.com,false,+8613800000001,true,CN,,
both,Bo,both@example.com,true,+8613800000002,true,CN,true,
mailer,May,mailer@example.com,true,+8613800000003,false,CN,,
leaver,Lee,leaver@example.com,true,+8613800000004,true,CN,false,true
"""
NO_EMAIL = "no email consent (opt-in, unsubscribe or suppression)"
NO_SMS = "no SMS consent (opt-in, STOP or suppression)"


def nudge(ws: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--workspace", str(ws), *args], env={"NUDGE_SECRET": "s"})
    assert result.exit_code == 0, result.output
    return result.stdout


def shop(root: Path, store_url: str) -> Path:
    write_workspace(
        root,
        [CAMPAIGN],
        config={
            "store": store_url,
            "sms": {"from": "+8610000000"},
            "topics": {"newsletter": {"label": "News"}, "promotions": {"label": "Offers"}},
        },
        templates={"spring.html.j2": "<p>Hi {{ customer.first_name }}, your code {{ coupons.spring.code }}</p>\n"},
    )
    (root / "customers.csv").write_text(CUSTOMERS)
    nudge(root, "import", "customers", str(root / "customers.csv"))
    return root


def texts(ws: Path) -> dict[str, str]:
    """Number → text, from the SMS outbox's JSON files."""
    found = [json.loads(p.read_text()) for p in (ws / "sms-outbox").glob("*.json")]
    assert len(found) == len({m["to"] for m in found})
    return {m["to"]: m["text"] for m in found}


def emails(ws: Path) -> dict[str, str]:
    """Address → plain text, from the email outbox's .eml files."""
    found = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in (ws / "outbox").glob("*.eml")]
    return {str(m["To"]): m.get_body(preferencelist=("plain",)).get_content() for m in found}


def test_each_customer_is_reached_on_the_channels_they_agreed_to_and_the_ledger_says_so(store, tmp_path):
    ws = shop(tmp_path / "ws", store.url)
    nudge(ws, "run", "--at", AT)

    sms, mail = texts(ws), emails(ws)
    assert sorted(sms) == ["+8613800000001", "+8613800000002"]  # texter, both
    assert sorted(mail) == ["both@example.com", "mailer@example.com"]
    assert sms["+8613800000001"].startswith("Tex, 10% off with ")
    # One coupon per customer, whichever channel carries it: both messages of `both` name the same code.
    code = sms["+8613800000002"].split("with ")[1].split()[0]
    assert code in mail["both@example.com"]

    rows = json.loads(nudge(ws, "deliveries", "--format", "json"))
    ledger = {(r["customer_id"], r["channel"]): (r["status"], r["reason"]) for r in rows}
    assert ledger == {
        ("texter", "sms"): ("sent", None),
        ("texter", "email"): ("skipped", NO_EMAIL),
        ("both", "email"): ("sent", None),
        ("both", "sms"): ("sent", None),
        ("mailer", "email"): ("sent", None),
        ("mailer", "sms"): ("skipped", NO_SMS),
    }  # the leaver: nothing, on any channel

    [report] = json.loads(nudge(ws, "report", "--format", "json"))["campaigns"]
    assert report["targeted"] == 3
    assert {channel: (n["sent"], n["skipped"]) for channel, n in report["channels"].items()} == {
        "email": (2, 1),
        "sms": (2, 1),
    }
    leaver = json.loads(nudge(ws, "customer", "leaver", "--format", "json"))
    assert leaver["messages"] == [] and leaver["coupons"] == []
    texter = json.loads(nudge(ws, "customer", "texter", "--format", "json"))
    assert sorted((m["channel"], m["status"]) for m in texter["messages"]) == [("email", "skipped"), ("sms", "sent")]
