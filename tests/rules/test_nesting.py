"""Conditions nest at most MAX_NESTING deep with their segments expanded: a chain of segments once
validated and then ended every dry run in a RecursionError (or SQLite's "parser stack overflow");
a cycle of segments without a `not` hung validate."""

from __future__ import annotations

import time

import pytest
import yaml
from click.testing import CliRunner

from engine.cli.main import main
from engine.core.errors import UserInputError
from engine.rules.nesting import MAX_NESTING
from tests.support.helpers import email_campaign, write_workspace


def chain(length: int) -> dict:
    """s0 → not s1 → not s2 … → a leaf: s0 nests `length` deep."""
    segments = {f"s{i}": {"not": {"segment": f"s{i + 1}"}} for i in range(length - 1)}
    segments[f"s{length - 1}"] = {"attribute": "country", "eq": "US"}
    return segments


def write_segments(root, segments: dict) -> None:
    """One segment a line, as flow YAML: segment NAME is on line 2 + its index."""
    lines = [f"  {name}: {yaml.safe_dump(body, default_flow_style=True).strip()}" for name, body in segments.items()]
    (root / "rules" / "segments.yaml").write_text("segments:\n" + "\n".join(lines) + "\n")


def nudge(root, *args):
    return CliRunner().invoke(main, ["--workspace", str(root), *args])


def test_a_chain_of_segments_deeper_than_the_bound_is_located_in_both_files(tmp_path):
    ws = write_workspace(tmp_path, [])
    write_segments(tmp_path, chain(400))
    (tmp_path / "rules" / "probe.yaml").write_text(
        'campaign: probe\nschedule: "0 9 * * *"\naudience:\n  segment: s0\n'
        "actions: [{email: {template: hello.html.j2, subject: Hi}}]\n"
    )
    result = nudge(ws.root, "validate")
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert f"{tmp_path}/rules/probe.yaml:4:3: error: conditions nest 400 levels deep, segments included: " in (
        "\n".join(lines)
    )
    assert any(line.startswith(f"{tmp_path}/rules/segments.yaml:2:3: error: conditions nest 400") for line in lines)


def test_the_bound_itself_runs_on_sqlite(tmp_path):
    campaign = email_campaign(audience={"segment": "s0"})
    config = {"store": f"sqlite:///{tmp_path / 'store.db'}"}
    ws = write_workspace(tmp_path, [campaign], config=config, segments=chain(MAX_NESTING))
    assert nudge(ws.root, "migrate").exit_code == 0
    result = nudge(ws.root, "dry-run", "--at", "2026-06-01T09:00:00Z")  # SQLite parses about 20 nested NOTs
    assert result.exit_code == 0, result.output


def test_one_level_more_is_refused(tmp_path):
    with pytest.raises(UserInputError) as refused:
        write_workspace(tmp_path, [email_campaign(audience={"segment": "s0"})], segments=chain(MAX_NESTING + 1))
    assert f"conditions nest {MAX_NESTING + 1} levels deep, segments included: at most {MAX_NESTING}" in str(
        refused.value
    )


def test_a_cycle_of_segments_is_reported_not_a_hang(tmp_path):
    segments = {"a": {"all": [{"segment": "b"}, {"event": "purchase"}]}, "b": {"any": [{"segment": "a"}]}}
    write_workspace(tmp_path, [])
    write_segments(tmp_path, segments)
    (tmp_path / "rules" / "probe.yaml").write_text(
        'campaign: probe\nschedule: "0 9 * * *"\naudience: {segment: a}\n'
        'actions: [{email: {template: hello.html.j2, subject: "{{ matched.purchase.type }}"}}]\n'
    )
    started = time.process_time()  # the work done, in this process: a loaded machine does not add to it
    result = nudge(tmp_path, "validate")
    assert time.process_time() - started < 20
    assert result.exit_code == 2 and "segment refers to itself: a -> b -> a" in result.stderr
