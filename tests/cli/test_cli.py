"""The `nudge` command as a marketer uses it: exit codes, exact error lines, nothing written by a dry run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from tests.support.store import ROOT

AT = "2026-06-01T09:00:00+00:00"


def nudge(workspace: Path, *args: str):
    return CliRunner().invoke(main, ["--workspace", str(workspace), *args], catch_exceptions=False)


def store_digest(workspace: Path) -> str:
    """The store's data: the database file and its write-ahead log. The -shm file is SQLite's
    shared-memory index, which any reader (even read-only) may create; an empty log is no log."""
    digest = hashlib.sha256()
    for file in sorted(workspace.glob("nudge.db*")):
        if file.name.endswith("-shm") or (file.name.endswith("-wal") and file.stat().st_size == 0):
            continue
        digest.update(file.name.encode() + file.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def demo_ws(workspace_dir: Path) -> Path:
    result = nudge(workspace_dir, "demo", "--customers", "400", "--at", AT)
    assert result.exit_code == 0, result.output
    return workspace_dir


def test_validate_accepts_the_standard_campaigns(workspace_dir):
    result = nudge(workspace_dir, "validate")
    assert result.exit_code == 0
    assert "ok: 7 campaigns, 3 segments" in result.output
    # each text's cost, per locale it is written in: a note, not a warning (the run stays clean)
    notes = [line.split(": note: ")[1] for line in result.stderr.splitlines() if ": note: " in line]
    assert any(n.startswith("text message (zh-CN): UCS-2, 1 segment (") for n in notes), notes
    assert any(n.startswith("text message (en): GSM-7, 1 segment (") for n in notes), notes
    assert "warning" not in result.output


def test_validate_reports_every_problem_with_file_line_and_column(workspace_dir):
    rule = workspace_dir / "rules" / "broken.yaml"
    rule.write_text(
        "campaign: broken\n"
        'schedule: "0 25 * * *"\n'
        "audience:\n"
        "  all:\n"
        "    - event: purchase\n"
        "      within: 90x\n"
        "      colour: red\n"
        "    - attribute: favourite_colour\n"
        "      eq: red\n"
        "actions:\n"
        "  - email: {template: nope.html.j2, subject: hi}\n"
    )
    (workspace_dir / "templates" / "bad.html.j2").write_text("<p>\n{% if %}\n</p>\n")
    result = nudge(workspace_dir, "validate")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{rule}:2:11: error: invalid cron '0 25 * * *': Error validating expression '25': "
        "the last value (25) is higher than the maximum value (23)",
        f"{rule}:6:15: error: invalid duration '90x': use a number and a unit s, m, h, d or w (e.g. 90d)",
        f"{rule}:7:7: error: unknown field 'colour'",
        # the shape errors above do not hide a template that does not exist
        f"{rule}:11:23: error: template 'nope.html.j2' not found in {workspace_dir / 'templates'}",
        f"{workspace_dir / 'templates' / 'bad.html.j2'}:2: error: template syntax error: "
        "Expected an expression, got 'end of statement block'",
    ]


def test_validate_reports_semantic_problems_once_the_shape_is_right(workspace_dir):
    rule = workspace_dir / "rules" / "semantic.yaml"
    rule.write_text(
        "campaign: semantic\n"
        "schedule: {every: 1h}\n"
        "audience:\n"
        "  any:\n"
        "    - attribute: favourite_colour\n"
        "      eq: red\n"
        "    - segment: nope\n"
        "    - event: purchase\n"
        "      sum: {of: amount, gte: lots}\n"
        "actions:\n"
        "  - email:\n"
        "      template: nope.html.j2\n"
        '      subject: "Hi {{ promo }}"\n'
    )
    result = nudge(workspace_dir, "validate")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert [line.split(": error: ")[0] for line in lines] == [
        f"{rule}:5:18",
        f"{rule}:7:16",
        f"{rule}:9:30",
        f"{rule}:12:17",
        f"{rule}:13:16",
    ]
    assert "unknown segment 'nope'" in lines[1] and "undefined template variable 'promo'" in lines[4]


def test_bad_config_is_located_and_secrets_are_refused(workspace_dir):
    config = workspace_dir / "config.yaml"
    config.write_text("timezone: Mars/Olympus\nemail:\n  connector: sendgrid\n  api_key: SG.abc\n")
    result = nudge(workspace_dir, "validate")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{config}:4:3: error: 'api_key': secrets do not belong in config.yaml")
    assert "SG.abc" not in result.stderr
    config.write_text("timezone: Mars/Olympus\n")
    assert nudge(workspace_dir, "validate").stderr.startswith(f"{config}:1:11: error: unknown time zone")


def test_malformed_import_exits_2_lists_rows_and_leaves_the_store_unchanged(demo_ws, tmp_path):
    before = store_digest(demo_ws)
    bad = tmp_path / "customers.csv"
    bad.write_text("id,email,birthday\nnew1,new1@example.com,1990-01-01\nnew2,x@example.com,1990-02-30\n")
    result = nudge(demo_ws, "import", "customers", str(bad))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"{bad}:3: error: birthday: expected YYYY-MM-DD or --MM-DD, got '1990-02-30'"]
    assert store_digest(demo_ws) == before


def test_dry_run_json_is_the_spec_shape_and_writes_nothing(demo_ws):
    before = store_digest(demo_ws)
    result = nudge(demo_ws, "dry-run", "--format", "json", "--at", AT)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["at"] == AT
    assert [c["campaign"] for c in data["campaigns"]] == [
        "low-satisfaction",
        "birthday",
        "birthday-text",
        "churn-winback/offer",  # a journey: one entry per step, in order
        "churn-winback/reminder",
        "churn-winback/call",
        "lapsed-buyers",
        "browse-abandonment",
    ]
    spec_keys = {"campaign", "matched", "excluded", "targeted", "customers", "held_out"}
    for plan in data["campaigns"]:
        journey = "/" in plan["campaign"]
        tasks_only = plan["campaign"] in ("low-satisfaction", "churn-winback/call")  # no message: no channels
        assert spec_keys | ({"journey", "skipped"} if journey else set()) <= set(plan)
        assert ("channels" in plan) != tasks_only
        assert set(plan) - spec_keys <= {"journey", "skipped", "channels", "locales", "variants", "render_failures"}
        assert set(plan["excluded"]) >= {"no_consent", "cooldown", "holdout", "frequency_cap"}
        extra = {"when_false", "exclusive"}  # a journey step with `when`; a campaign in an exclusive group
        assert set(plan["excluded"]) - {"no_consent", "cooldown", "holdout", "frequency_cap"} <= extra
        assert plan["customers"] == sorted(plan["customers"]) and plan["held_out"] == sorted(plan["held_out"])
        assert plan["matched"] == plan["targeted"] + sum(plan["excluded"].values())
        assert plan["targeted"] == len(plan["customers"]) and plan["excluded"]["holdout"] == len(plan["held_out"])
    reminder = next(c for c in data["campaigns"] if c["campaign"] == "churn-winback/reminder")
    assert reminder["journey"] == {"journey": "churn-winback", "step": "reminder", "position": 2, "of": 3}
    assert reminder["excluded"]["when_false"] == 0 and reminder["skipped"] == 0
    lapsed = next(c for c in data["campaigns"] if c["campaign"] == "lapsed-buyers")
    assert lapsed["targeted"] > 0 and lapsed["excluded"]["no_consent"] > 0
    assert "exclusive" in lapsed["excluded"] and "exclusive" not in reminder["excluded"]  # only at entry
    assert store_digest(demo_ws) == before


def test_dry_run_names_campaigns_renders_samples_and_writes_csv(demo_ws):
    result = nudge(demo_ws, "dry-run", "browse-abandonment", "--render", "1", "--at", AT)
    assert result.exit_code == 0, result.stderr
    assert "Still thinking about" in result.stdout and "browse-abandonment" in result.stdout
    csv_out = nudge(demo_ws, "dry-run", "birthday", "--format", "csv", "--at", AT).stdout.splitlines()
    assert csv_out[0] == "campaign,customer_id,outcome"
    assert all(line.startswith("birthday,demo-") for line in csv_out[1:])


def test_dry_run_usage_errors(demo_ws, workspace_dir, tmp_path):
    unknown = nudge(demo_ws, "dry-run", "no-such-campaign")
    assert unknown.exit_code == 2 and "unknown campaign 'no-such-campaign'" in unknown.stderr
    bad_at = nudge(demo_ws, "dry-run", "--at", "tomorrow-ish")
    assert bad_at.exit_code == 2 and "--at: error: expected an ISO 8601 time" in bad_at.stderr
    fresh = tmp_path / "fresh"
    assert nudge(tmp_path, "init", str(fresh)).exit_code == 0
    no_store = nudge(fresh, "dry-run")
    assert no_store.exit_code == 1 and "no store at" in no_store.stderr
    assert not (fresh / "nudge.db").exists()


def test_explain_shows_each_condition_value_and_outcome(demo_ws):
    data = json.loads(nudge(demo_ws, "dry-run", "lapsed-buyers", "--format", "json", "--at", AT).stdout)
    target = data["campaigns"][0]["customers"][0]
    result = nudge(demo_ws, "explain", target, "--campaign", "lapsed-buyers", "--at", AT, "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["outcome"] == "targeted" and report["audience"]["passed"] is True
    buyer, recent = report["audience"]["children"]
    assert buyer["condition"] == "segment buyer" and buyer["children"][0]["value"]["count"] >= 1
    assert recent["condition"] == "not" and recent["children"][0]["passed"] is False
    tree = nudge(demo_ws, "explain", target, "--campaign", "lapsed-buyers", "--at", AT)
    assert "event purchase within 180d count gte 1" in tree.stdout and "outcome: targeted" in tree.stdout
    missing = nudge(demo_ws, "explain", "nobody", "--campaign", "lapsed-buyers")
    assert missing.exit_code == 2 and "no customer with id 'nobody'" in missing.stderr


def test_schema_is_json_schema_for_rule_files(tmp_path):
    schema = json.loads(CliRunner().invoke(main, ["schema"]).stdout)
    assert schema["title"] == "nudge campaign"
    assert {"campaign", "schedule", "trigger", "audience", "actions", "steps", "exit_on"} <= set(schema["properties"])
    assert set(schema["required"]) >= {"campaign", "audience"}
    assert schema["allOf"] == [
        {"oneOf": [{"required": ["actions"]}, {"required": ["steps"]}]},
        {"anyOf": [{"required": ["schedule"]}, {"required": ["trigger"]}]},
    ]


def test_init_scaffolds_a_workspace_that_validates(tmp_path):
    target = tmp_path / "shop"
    assert nudge(tmp_path, "init", str(target)).exit_code == 0
    assert sorted(p.name for p in (target / "rules").iterdir()) == [
        "birthday-text.yaml",
        "birthday.yaml",
        "browse-abandonment.yaml",
        "churn-winback.yaml",
        "lapsed-buyers.yaml",
        "low-satisfaction.yaml",
        "segments.yaml",
        "vip-followup.yaml",
    ]
    assert nudge(target, "validate").exit_code == 0
    again = nudge(tmp_path, "init", str(target))
    assert again.exit_code == 2 and "already a workspace" in again.stderr


def test_errors_never_print_a_traceback(workspace_dir):
    (workspace_dir / "rules" / "oops.yaml").write_text("campaign: [unclosed\n")
    done = subprocess.run(
        [sys.executable, "-m", "engine", "--workspace", str(workspace_dir), "validate"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"{workspace_dir / 'rules' / 'oops.yaml'}:2:1: error: invalid YAML")


def test_the_standard_files_validate_against_the_schemas_an_editor_uses():
    import jsonschema
    import yaml

    rules = json.loads(CliRunner().invoke(main, ["schema"]).stdout)
    segments = json.loads(CliRunner().invoke(main, ["schema", "--segments"]).stdout)
    assert segments["title"] == "nudge segments"
    for file in sorted((ROOT / "rules").glob("*.yaml")):
        data = yaml.safe_load(file.read_text())
        if file.name == "segments.yaml":
            jsonschema.validate(data, segments)
            with pytest.raises(jsonschema.ValidationError):  # which is why it gets a schema of its own
                jsonschema.validate(data, rules)
        else:
            jsonschema.validate(data, rules)


def test_metrics_summary_shows_the_stored_model_fits(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "500", "--at", AT).exit_code == 0
    before = json.loads(nudge(workspace_dir, "metrics", "summary", "--at", AT, "--format", "json").stdout)
    assert before["models"] == []
    assert nudge(workspace_dir, "metrics", "refresh", "--at", AT).exit_code == 0
    after = json.loads(nudge(workspace_dir, "metrics", "summary", "--at", AT, "--format", "json").stdout)
    assert [m["model"] for m in after["models"]] == ["bgnbd", "gamma_gamma"]
    assert all(m["log_likelihood"] is not None and m["fitted_at"].startswith("2026-06-01") for m in after["models"])
    table = nudge(workspace_dir, "metrics", "summary", "--at", AT)
    assert "Lifetime-value models" in table.stdout and "log-likelihood" in table.stdout


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00Z", "9999-12-31T23:00:00+00:00", "1899-12-31T23:00:00"])
def test_an_at_outside_the_years_the_store_keeps_is_a_usage_error(demo_ws, at):
    result = nudge(demo_ws, "dry-run", "--at", at)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr == f"--at: error: {at!r} is outside the years 1900-2200\n"


def test_explain_prints_list_values_that_look_like_markup(demo_ws):
    rule = demo_ws / "rules" / "birthday.yaml"
    rule.write_text(
        rule.read_text().replace(
            "  birthday: {in: 0d}",
            "  all:\n    - attribute: id\n      in: [demo-00001, '[x]']\n    - birthday: {in: 0d}",
        )
    )
    assert nudge(demo_ws, "validate").exit_code == 0
    shown = nudge(demo_ws, "explain", "demo-00001", "--campaign", "birthday", "--at", AT).stdout
    assert "attribute id in [demo-00001, [x]]" in shown or "attribute id in ['demo-00001', '[x]']" in shown, shown


def test_a_run_at_a_past_instant_warns_that_it_sends_now(demo_ws):
    result = nudge(demo_ws, "run", "birthday", "--at", AT)
    assert result.exit_code == 0, result.stderr
    assert "warning: --at is" in result.stderr and "messages leave now" in result.stderr
    assert "warning" not in nudge(demo_ws, "run", "birthday").stderr  # now: nothing to warn about


def test_a_reader_that_stops_early_is_not_an_error(demo_ws):
    reader = subprocess.Popen(
        [sys.executable, "-m", "engine", "--workspace", str(demo_ws), "catalog", "--format", "json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    reader.stdout.close()  # like `| head -1` that has what it wanted before nudge writes
    _, err = reader.communicate(timeout=60)
    assert reader.returncode == 0 and err == b""
