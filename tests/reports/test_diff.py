"""`nudge diff`: a rules change reviewed by its effect on the audiences."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from tests.support.helpers import email_campaign, write_workspace
from tests.support.store import seed

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
    # A shorter "no purchase within" window: more lapsed buyers (whatever the window is today).
    shorter = re.sub(r"(within: )(\d+)d", lambda m: f"{m[1]}{int(m[2]) * 2 // 3}d", lapsed.read_text(), count=1)
    lapsed.write_text(shorter)
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


@pytest.fixture
def reviewed(workspace_dir, store):
    """The demo workspace on either store, its rules and templates committed."""
    config = workspace_dir / "config.yaml"
    config.write_text(config.read_text().replace("sqlite:///nudge.db", store.url))
    assert nudge(workspace_dir, "demo", "--customers", "300", "--at", AT).exit_code == 0
    git(workspace_dir, "init", "-q")
    git(workspace_dir, "add", "config.yaml", "rules", "templates")
    git(workspace_dir, "commit", "-qm", "base")
    return workspace_dir


def changes(workspace_dir) -> dict[str, dict]:
    result = nudge(workspace_dir, "diff", "--at", AT, "--format", "json")
    assert result.exit_code == 0, result.output
    return {c["campaign"]: c for c in json.loads(result.stdout)["campaigns"]}


def test_a_template_change_is_the_change_of_the_campaigns_whose_chain_holds_it(reviewed):
    offer = reviewed / "templates" / "churn_offer.html.j2"
    offer.write_text(offer.read_text() + "<!-- reworded -->\n")
    found = changes(reviewed)
    assert list(found) == ["churn-winback"]  # a journey's step template, and nobody else's
    winback = found["churn-winback"]
    assert winback["because"] == ["templates/churn_offer.html.j2"]
    assert winback["base"] == winback["head"] and winback["base"]["targeted"] > 0
    assert (winback["added"], winback["removed"], winback["audience_changed"]) == (0, 0, False)
    table = nudge(reviewed, "diff", "--at", AT).stdout
    assert "unchanged" in table and "+0" not in table and "churn-winback: templates/churn_offer.html.j2" in table
    git(reviewed, "checkout", "--", "templates")
    (reviewed / "templates" / "unused.html.j2").write_text("<p>not used by any campaign</p>\n")
    assert changes(reviewed) == {}
    layout = reviewed / "templates" / "_layout.html.j2"
    layout.write_text(layout.read_text() + "<!-- every email extends it -->\n")
    # low-satisfaction sends no email: no template of its own
    assert set(changes(reviewed)) == {"birthday", "browse-abandonment", "churn-winback", "lapsed-buyers"}


VARIANTS = {
    "campaign": "ab",
    "schedule": "0 9 * * *",
    "audience": {"attribute": "country", "eq": "FR"},
    "actions": [
        {
            "email": {
                "variants": [
                    {"name": "a", "weight": 50, "template": "a.html.j2", "subject": "A"},
                    {"name": "b", "weight": 50, "template": "b.html.j2", "subject": "B"},
                ]
            }
        }
    ],
}


def test_includes_imports_variants_locales_and_nested_segments_count_for_their_campaign_only(store, tmp_path):
    seed(
        store,
        customers=[
            {"id": f"c{i}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US" if i % 2 else "FR"}
            for i in range(20)
        ],
    )
    root = tmp_path / "ws"
    (root / "templates" / "parts").mkdir(parents=True)
    write_workspace(
        root,
        [VARIANTS, email_campaign("plain", {"segment": "americans"})],
        config={"store": store.url},
        templates={
            "hello.html.j2": "<p>Hi</p>\n",
            "a.html.j2": '<p>A</p>{% include "parts/footer.html.j2" %}\n',
            "b.html.j2": '{% import "macros.html.j2" as m %}<p>B</p>\n',
            "parts/footer.html.j2": "<p>footer</p>\n",
            "macros.html.j2": "{% macro button() %}<a>go</a>{% endmacro %}\n",
        },
        segments={"americans": {"segment": "us"}, "us": {"attribute": "country", "eq": "US"}, "unused": {"event": "x"}},
    )
    git(root, "init", "-q")
    git(root, "add", "config.yaml", "rules", "templates")
    git(root, "commit", "-qm", "base")

    def edit(path: str, old: str, new: str) -> dict[str, dict]:
        file = root / path
        file.write_text(file.read_text().replace(old, new))
        found = changes(root)
        git(root, "checkout", "--", "rules", "templates")
        return found

    assert edit("templates/parts/footer.html.j2", "footer", "new footer")["ab"]["because"] == [
        "templates/parts/footer.html.j2"
    ]
    assert list(edit("templates/macros.html.j2", "go", "shop now")) == ["ab"]
    assert edit("rules/segments.yaml", "event: x", "event: y") == {}
    nested = edit("rules/segments.yaml", "eq: US", "eq: FR")  # `us`, used through `americans`
    assert list(nested) == ["plain"] and nested["plain"]["because"] == ["segment us"]
    assert nested["plain"]["audience_changed"] and nested["plain"]["added"] == nested["plain"]["removed"] == 10
    (root / "templates" / "hello.de.html.j2").write_text("<p>Hallo</p>\n")  # what a German customer would get
    assert list(changes(root)) == ["plain"]
