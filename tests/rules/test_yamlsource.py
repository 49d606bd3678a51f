"""Hostile YAML is refused quickly and located: alias bombs, cycles, deep nesting, huge files."""

from __future__ import annotations

import os
import time

import pytest

from engine.core.errors import UserInputError
from engine.rules.yamlsource import MAX_BYTES, MAX_DEPTH, parse_yaml, read_yaml


def laughs(levels: int = 9, width: int = 9) -> str:
    """The billion-laughs file: each level an anchored list of `width` aliases of the one before."""
    lines = ["campaign: laughs", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def problems_of(text: str) -> list[str]:
    with pytest.raises(UserInputError) as caught:
        parse_yaml(text, "rules/x.yaml")
    return [str(p) for p in caught.value.problems]


def test_an_alias_bomb_is_refused_at_the_alias_that_passes_the_bound_in_milliseconds():
    text = laughs()
    assert len(text) < 1024
    # CPU time, not wall time: the bound is on the work done (an expanded bomb would take minutes),
    # which a loaded machine pausing this process does not change.
    started = time.process_time()
    found = problems_of(text)
    assert time.process_time() - started < 1
    # a3 expands to 7,381 values: the second alias of it in a4 (line 6, column 15) passes 20,000.
    assert found == [
        "rules/x.yaml:6:15: error: more than 20,000 values once aliases are expanded: "
        "write the repeated part out, or reuse it through rules/segments.yaml"
    ]


def test_aliases_within_the_bound_still_work():
    located = parse_yaml("base: &b {a: 1, b: [1, 2]}\none: *b\ntwo: *b\n", "x.yaml")
    assert located.data == {"base": {"a": 1, "b": [1, 2]}, "one": {"a": 1, "b": [1, 2]}, "two": {"a": 1, "b": [1, 2]}}
    assert located.position(("two", "b", 1)) == (1, 24)  # an expanded alias points at its anchor's text


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("campaign: &a [*a]\n", "1:15"),
        ("campaign: x\naudience: &a {all: [*a]}\n", "2:21"),
        ("a: &a {b: &b [*a]}\n", "1:15"),
    ],
)
def test_an_alias_inside_its_own_anchor_is_a_located_error_not_a_recursion_error(text, where):
    [found] = problems_of(text)
    assert found.startswith(f"rules/x.yaml:{where}: error: alias *a refers to its own anchor &a (a cycle)")


@pytest.mark.parametrize("opening", ["[", "{a: ", "- "])
def test_nesting_deeper_than_the_bound_is_a_located_error(opening):
    depth = 5_000
    if opening == "- ":  # block style: each level one line deeper
        text = "".join("  " * i + "- \n" for i in range(200))
    else:
        text = opening * depth + ("]" if opening == "[" else "}") * depth
    [found] = problems_of(text)
    assert f"nested more than {MAX_DEPTH} levels deep" in found
    line = MAX_DEPTH + 1 if opening == "- " else 1  # the first level past the bound
    assert found.startswith(f"rules/x.yaml:{line}:")


def test_nesting_up_to_the_bound_is_accepted():
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_yaml(text, "x.yaml").data is not None


def test_a_huge_file_is_refused_before_it_is_read_whole(tmp_path):
    big = tmp_path / "big.yaml"
    with big.open("w") as handle:
        handle.write("campaign: x\n")
        handle.write("# " + "x" * (MAX_BYTES + 10) + "\n")
    with pytest.raises(UserInputError) as caught:
        read_yaml(big)
    assert "larger than 1,000,000 bytes" in str(caught.value)


def test_a_fifo_is_refused_rather_than_read(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(UserInputError) as caught:
        read_yaml(fifo)  # opening it for reading would block forever
    assert "not a regular file" in str(caught.value)


def test_a_character_yaml_refuses_is_located():
    [found] = problems_of("campaign: x\naudience: \x07\n")
    assert found == "rules/x.yaml:2:11: error: invalid YAML: character '\\x07' is not allowed in YAML"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "priority: " + "1" * 5000 + "\n",
            "1:11: error: invalid YAML: cannot read '" + "1" * 37 + "...': a number with too many digits",
        ),
        (
            "since: !!timestamp 2026-13-45\n",
            "1:8: error: invalid YAML: cannot read '2026-13-45': month must be in 1..12",
        ),
        ("? [a, b]\n: 1\n", "1:3: error: a mapping key must be a plain value"),
    ],
)
def test_a_value_yaml_cannot_construct_is_located_not_a_traceback(text, message):
    [found] = problems_of(text)
    assert found == f"rules/x.yaml:{message}"


def test_validate_reports_two_alias_bombs_and_a_cycle_at_once_in_seconds(workspace_dir):
    from click.testing import CliRunner

    from engine.cli.main import main

    rules = workspace_dir / "rules"
    (rules / "laughs-a.yaml").write_text(laughs())
    (rules / "laughs-b.yaml").write_text(laughs(levels=12, width=12))
    (rules / "cycle.yaml").write_text("campaign: &c [*c]\n")
    started = time.process_time()  # the work done, in this process: a loaded machine does not add to it
    result = CliRunner().invoke(main, ["--workspace", str(workspace_dir), "validate"])
    assert time.process_time() - started < 10
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert sorted(line.split(": error: ")[0] for line in result.stderr.splitlines()) == [
        f"{rules / 'cycle.yaml'}:1:15",
        f"{rules / 'laughs-a.yaml'}:6:15",
        f"{rules / 'laughs-b.yaml'}:6:10",
    ]


def test_a_byte_that_is_not_utf8_is_located(tmp_path):
    file = tmp_path / "latin1.yaml"
    file.write_bytes(b"campaign: probe\ndescription: Caf\xe9\n")
    with pytest.raises(UserInputError) as caught:
        read_yaml(file)
    assert str(caught.value) == f"{file}:2:17: error: not UTF-8 text: byte 0xe9; save the file as UTF-8"
