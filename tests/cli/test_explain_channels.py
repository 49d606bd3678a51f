"""`nudge explain` on a campaign with several channels: a customer reached on some of them is
targeted, and explain says on which, and why not on the others, in the facts of their consent."""

from __future__ import annotations

import json

from click.testing import CliRunner

from engine.cli.main import main
from engine.store import open_store
from tests.support.helpers import write_workspace
from tests.support.store import seed

AT = "2026-06-01T09:00:00+00:00"
CAMPAIGN = {
    "campaign": "news",
    "schedule": "0 9 * * *",
    "audience": {"attribute": "country", "eq": "US"},
    "actions": [
        {"email": {"template": "hello.html.j2", "subject": "Hi"}},
        {"sms": {"text": "Hi {{ customer.first_name }}"}},
    ],
}


def explain(root, customer: str, *extra: str):
    result = CliRunner().invoke(
        main, ["--workspace", str(root), "explain", customer, "--campaign", "news", "--at", AT, *extra]
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_explain_names_the_channels_a_customer_is_reached_on_and_why_not_the_others(tmp_path):
    root = tmp_path / "ws"
    write_workspace(root, [CAMPAIGN])
    store = open_store(f"sqlite:///{root / 'nudge.db'}", create=True)
    seed(
        store,
        customers=[
            {"id": "ann", "country": "US", "email": "ann@example.com", "email_opt_in": True, "phone": "+14155552671"},
            {"id": "bob", "country": "US", "phone": "+14155552672", "sms_opt_in": True},
            {"id": "cy", "country": "US", "email": "cy@example.com"},
        ],
    )
    store.dispose()
    ann = explain(root, "ann")
    assert "targeted — by email; not by sms: has not opted in to text messages (sms_opt_in is false)" in ann
    bob = explain(root, "bob")
    assert "by sms; not by email: no email address on file" in bob
    assert json.loads(explain(root, "bob", "--format", "json"))["channels"] == {"email": False, "sms": True}
    cy = explain(root, "cy")  # neither channel: excluded, with the reason for each
    assert "no_consent — email: has not opted in to email (email_opt_in is false); sms: no phone number on file" in cy
