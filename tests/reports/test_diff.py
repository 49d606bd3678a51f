"""`nudge diff`: a rules change reviewed by its effect on the audiences."""

from __future__ import annotations

import json
import subprocess

from click.testing import CliRunner

from engine.cli.main import main

AT = "2026-06-01T09:00:00+00:00"


def nudge(workspace_dir, *args):
    return CliRunner().invoke(main, ["--workspace", str(workspace_dir), *args])


def git(workspace_dir, *args):
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=workspace_dir,
        check=True,
        capture_output=True,
    )


def test_diff_reports_changed_added_and_removed_campaigns_with_who_moves(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "400", "--at", AT).exit_code == 0
    git(workspace_dir, "init", "-q")
    git(workspace_dir, "add", "config.yaml", "rules", "templates")
    git(workspace_dir, "commit", "-qm", "base")
    unchanged = nudge(workspace_dir, "diff", "--at", AT, "--format", "json")
    assert unchanged.exit_code == 0 and json.loads(unchanged.stdout)["campaigns"] == []
    before = json.loads(nudge(workspace_dir, "dry-run", "lapsed-buyers", "--at", AT, "--format", "json").stdout)
    lapsed = workspace_dir / "rules" / "lapsed-buyers.yaml"
    lapsed.write_text(lapsed.read_text().replace("within: 90d", "within: 60d"))
    after = json.loads(nudge(workspace_dir, "dry-run", "lapsed-buyers", "--at", AT, "--format", "json").stdout)
    (workspace_dir / "rules" / "birthday.yaml").unlink()
    copy = (workspace_dir / "rules" / "browse-abandonment.yaml").read_text()
    (workspace_dir / "rules" / "browse-twice.yaml").write_text(
        copy.replace("campaign: browse-abandonment", "campaign: browse-twice")
    )
    result = nudge(workspace_dir, "diff", "--at", AT, "--format", "json")
    assert result.exit_code == 0, result.output
    changes = {c["campaign"]: c for c in json.loads(result.stdout)["campaigns"]}
    assert {name: c["change"] for name, c in changes.items()} == {
        "birthday": "removed",
        "browse-twice": "added",
        "lapsed-buyers": "changed",
    }
    was, now = set(before["campaigns"][0]["customers"]), set(after["campaigns"][0]["customers"])
    lapsed_change = changes["lapsed-buyers"]
    assert lapsed_change["base"]["targeted"] == len(was) and lapsed_change["head"]["targeted"] == len(now)
    assert lapsed_change["added"] == len(now - was) > 0 and lapsed_change["removed"] == len(was - now)
    assert set(lapsed_change["added_sample"]) <= now - was
    assert changes["birthday"]["head"] == {"matched": 0, "targeted": 0}
    table = nudge(workspace_dir, "diff", "--at", AT)
    assert "lapsed-buyers" in table.stdout and "changed" in table.stdout


def test_an_unknown_revision_is_a_clear_error(workspace_dir):
    assert nudge(workspace_dir, "demo", "--customers", "50", "--at", AT).exit_code == 0
    git(workspace_dir, "init", "-q")
    result = nudge(workspace_dir, "diff", "--base", "no-such-rev")
    assert result.exit_code == 2 and result.stderr.startswith("--base: error: git: ")
