"""config.yaml and rule fields that would hurt real customers: refused at validate, located."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from engine.cli.main import main


def validate(workspace_dir):
    return CliRunner().invoke(main, ["--workspace", str(workspace_dir), "validate"])


# The standard rules of the workspace put lapsed-buyers and churn-winback in one exclusive group,
# birthday and birthday-text in another.
STANDARD_GROUP = "limits: {exclusive: {winback: 60d, birthday: 300d}}\n"


def write_config(workspace_dir, text: str):
    config = workspace_dir / "config.yaml"
    config.write_text(text + ("" if "limits:" in text else STANDARD_GROUP))  # appended: line numbers hold
    return config


@pytest.mark.parametrize(
    ("url_line", "message"),
    [
        ("", "unsubscribe_url is required to send through 'smtp'"),
        ("  unsubscribe_url: http://127.0.0.1:8025/unsubscribe\n", "must be a public https:// URL"),
        ("  unsubscribe_url: https://localhost/unsubscribe\n", "points at this machine or a private network"),
        ("  unsubscribe_url: https://10.1.2.3/u\n", "points at this machine or a private network"),
    ],
)
def test_a_real_connector_needs_a_public_https_unsubscribe_link(workspace_dir, url_line, message):
    config = write_config(workspace_dir, "timezone: UTC\nemail:\n  connector: smtp\n" + url_line)
    result = validate(workspace_dir)
    assert result.exit_code == 2
    # Located at the email settings (the connector line), the reason in plain words.
    assert result.stderr.startswith(f"{config}:3:3: error: unsubscribe_url ") and message in result.stderr


def test_a_public_https_link_or_the_outbox_is_accepted(workspace_dir):
    write_config(workspace_dir, "timezone: UTC\nemail:\n  connector: smtp\n  unsubscribe_url: https://shop.example/u\n")
    assert validate(workspace_dir).exit_code == 0
    write_config(workspace_dir, "timezone: UTC\nemail:\n  connector: outbox\n")
    assert validate(workspace_dir).exit_code == 0


def test_an_unknown_connector_or_sink_is_a_located_error(workspace_dir):
    config = write_config(workspace_dir, "timezone: UTC\nemail:\n  connector: mailchimp\ntasks:\n  sink: zendesk\n")
    result = validate(workspace_dir)
    assert result.exit_code == 2
    assert f"{config}:3:14: error: unknown connector 'mailchimp': available are outbox, sendgrid, smtp" in result.stderr
    assert f"{config}:5:9: error: unknown connector 'zendesk': available are csv, store, webhook" in (result.stderr)


def test_a_credential_in_config_is_refused_with_the_environment_alternative(workspace_dir):
    config = write_config(
        workspace_dir,
        "timezone: UTC\ntasks:\n  sink: webhook\n  webhook:\n    url: https://help.example/tasks\n"
        "    headers:\n      Authorization: Bearer s3cr3t\n",
    )
    result = validate(workspace_dir)
    assert result.exit_code == 2 and "s3cr3t" not in result.output
    assert result.stderr.strip() == (
        f"{config}:7:7: error: 'Authorization': secrets do not belong in config.yaml; set them in the "
        "environment and name the variable: headers_from_env: {Authorization: HELPDESK_AUTH}"
    )


@pytest.mark.parametrize("name", ["/etc/passwd", "../config.yaml", "a/../../b.html"])
def test_a_template_outside_templates_is_refused(workspace_dir, name):
    rule = workspace_dir / "rules" / "birthday.yaml"
    text = rule.read_text()
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "template:" in row)
    rule.write_text(text.replace("template: birthday.html.j2", f"template: {name}"))
    result = validate(workspace_dir)
    assert result.exit_code == 2
    assert f"{rule}:{line}:" in result.stderr
    assert "must name a file inside templates/ (no absolute path, no '..')" in result.stderr


@pytest.mark.parametrize(("written", "hint"), [("0.1", "10%"), ("10", "10%")])
def test_a_percentage_without_percent_sign_is_refused_not_misread(workspace_dir, written, hint):
    rule = workspace_dir / "rules" / "birthday.yaml"
    rule.write_text(rule.read_text().replace("holdout: 5%", f"holdout: {written}"))
    result = validate(workspace_dir)
    assert result.exit_code == 2
    assert f"write the percentage with %, e.g. {hint}: a bare {written} is ambiguous" in result.stderr


def test_init_writes_a_gitignore_that_keeps_customer_data_out(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "shop")])
    assert result.exit_code == 0 and ".gitignore" in result.output
    ignored = (tmp_path / "shop" / ".gitignore").read_text().splitlines()
    assert {"nudge.db", "nudge.db-*", "outbox/", "tasks.csv"} <= set(ignored)
    existing = tmp_path / "repo"
    existing.mkdir()
    (existing / ".gitignore").write_text("node_modules/\noutbox/\n")
    CliRunner().invoke(main, ["init", str(existing)])
    lines = (existing / ".gitignore").read_text().splitlines()
    assert lines[:2] == ["node_modules/", "outbox/"] and lines.count("outbox/") == 1 and "nudge.db" in lines


def test_a_webhook_key_that_is_not_sendgrids_ecdsa_key_is_a_located_error(workspace_dir):
    config = write_config(workspace_dir, "timezone: UTC\nemail:\n  sendgrid:\n    webhook_public_key: not-a-key\n")
    result = validate(workspace_dir)
    assert result.exit_code == 2
    assert f"{config}:4:25: error: webhook_public_key must be the ECDSA verification key" in result.stderr


def test_headers_from_env_is_the_accepted_way_to_name_a_webhook_credential(workspace_dir):
    write_config(
        workspace_dir,
        "timezone: UTC\ntasks:\n  sink: webhook\n  webhook:\n    url: https://help.example/tasks\n"
        "    headers_from_env:\n      Authorization: HELPDESK_AUTH\n",
    )
    assert validate(workspace_dir).exit_code == 0


def test_an_exclusive_group_name_longer_than_the_ledger_keeps_is_a_located_error(workspace_dir):
    long_name = "winback-" + "x" * 60
    config = write_config(workspace_dir, f"timezone: UTC\nlimits:\n  exclusive:\n    {long_name}: 60d\n")
    result = validate(workspace_dir)
    assert result.exit_code == 2
    assert (
        result.stderr.startswith(f"{config}:")
        and "exclusive group name is 68 characters long: at most 64" in result.stderr
    )
