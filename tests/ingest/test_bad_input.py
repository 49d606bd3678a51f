"""Inputs that once ended in a traceback or were silently misread: each is now a located error,
exit code 2, and an unchanged store, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli.main import main
from engine.core.errors import UserInputError
from engine.ingest.importer import import_file
from engine.store.tables import customers, events
from tests.support.store import NOW, seed


def problems(store, kind: str, file: Path) -> list[str]:
    """The messages of a rejected import, the same whether the file is read in process or by the
    reader process large files get; the store must be unchanged by it."""
    found = []
    for reader_process in (False, True):
        before = counts(store)
        with pytest.raises(UserInputError) as caught:
            import_file(store, kind, file, now=NOW, reader_process=reader_process)
        assert counts(store) == before, "a rejected file changed the store"
        found.append([f"{p.line}: {p.message}" for p in caught.value.problems])
    assert found[0] == found[1], "the reader process reported differently"
    return found[0]


def counts(store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        return tuple(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() for t in (customers, events))


def jsonl(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


EVENT = {"customer_id": "c1", "type": "purchase", "occurred_at": "2026-05-01T10:00:00Z"}


@pytest.fixture
def shop(store):
    seed(store, customers=[{"id": "c1", "email": "c1@example.com"}])
    return store


def test_a_number_with_thousands_of_digits(shop, tmp_path):
    file = jsonl(tmp_path / "e.jsonl", json.dumps(EVENT), '{"customer_id": "c1", "amount": ' + "9" * 5000 + "}")
    assert problems(shop, "events", file) == ["2: invalid JSON: a number with too many digits"]


def test_a_line_nested_100000_deep(shop, tmp_path):
    file = jsonl(tmp_path / "e.jsonl", json.dumps(EVENT), "[" * 100_000 + "]" * 100_000)
    assert problems(shop, "events", file) == ["2: invalid JSON: nested too deeply"]


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_instant_that_cannot_be_stored_in_utc(shop, tmp_path, moment):
    file = jsonl(tmp_path / "e.jsonl", json.dumps({**EVENT, "occurred_at": moment}))
    assert problems(shop, "events", file) == [
        f"1: occurred_at: {moment!r} is outside the range of times nudge can store"
    ]


def test_nan_is_not_json(shop, tmp_path):
    file = jsonl(
        tmp_path / "e.jsonl",
        '{"customer_id": "c1", "type": "purchase", "occurred_at": "2026-05-01", "properties": {"amount": NaN}}',
    )
    assert problems(shop, "events", file) == ["1: invalid JSON: NaN is not a number JSON allows"]


def test_a_nul_byte_in_a_csv_field(shop, tmp_path):
    file = tmp_path / "c.csv"
    file.write_bytes(b"id,first_name\nc2,Ann\nc3,B\x00b\n")
    assert problems(shop, "customers", file) == [
        "3: first_name: contains a NUL character (\\0), which the store cannot keep"
    ]


def test_latin1_bytes_are_reported_on_their_own_line(shop, tmp_path):
    file = tmp_path / "c.csv"
    rows = b"".join(b"c%d,Name%d\n" % (i, i) for i in range(2, 3000))  # lines 2 to 2999
    file.write_bytes(b"id,first_name\n" + rows + b"c9999,Jos\xe9\n" + b"c10000,Ok\n")
    assert problems(shop, "customers", file) == [
        "3000: not UTF-8 text: byte 0xe9 at column 10; save the file as UTF-8 (in a spreadsheet: CSV UTF-8)"
    ]


def test_a_file_without_a_header_line(shop, tmp_path):
    file = tmp_path / "c.csv"
    file.write_text("c2,ann@example.com,Ann\n")
    assert problems(shop, "customers", file) == [
        "1: the first line must name the columns (id required; missing id), found: c2, ann@example.com, Ann"
    ]


def test_a_semicolon_separated_file(shop, tmp_path):
    file = tmp_path / "c.csv"
    file.write_text("id;email;first_name\nc2;ann@example.com;Ann\n")
    assert problems(shop, "customers", file) == [
        "1: the file looks separated by ';', tab or '|': nudge reads comma-separated CSV"
    ]


def test_one_customer_twice_in_a_file(shop, tmp_path):
    file = tmp_path / "c.csv"
    file.write_text("id,first_name\nc2,Ann\nc3,Bo\nc2,Annie\n")
    assert problems(shop, "customers", file) == ["4: id: 'c2' appears again (first on line 2): one row per customer"]


def test_the_cli_exits_2_with_located_lines_and_no_traceback(workspace_dir, tmp_path):
    runner = CliRunner()
    people = tmp_path / "c.csv"
    people.write_text("id,email\nc1,c1@example.com\n")
    assert runner.invoke(main, ["--workspace", str(workspace_dir), "import", "customers", str(people)]).exit_code == 0
    bad = jsonl(tmp_path / "e.jsonl", json.dumps(EVENT), "[" * 100_000 + "]" * 100_000)
    result = runner.invoke(main, ["--workspace", str(workspace_dir), "import", "events", str(bad)])
    assert result.exit_code == 2
    assert result.stderr == f"{bad}:2: error: invalid JSON: nested too deeply\n"
    assert "Traceback" not in result.output


def event_line(**fields: object) -> str:
    return json.dumps({**EVENT, **fields})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"customer_id": "c1", "type": "purchase", "occurred_at": "2026-05-01T10:00:00Z", '
            '"properties": {"amount": ' + "9" * 401 + "}}",
            "properties.amount: an integer of 401 digits is beyond ±1e15 (send a larger integer as a string)",
        ),
        (
            '{"customer_id": "c1", "type": "purchase", "occurred_at": "2026-05-01T10:00:00Z", '
            '"properties": {"amount": 1e400}}',
            "properties.amount: inf is not a finite number",
        ),
        (
            event_line(properties={"items": [{"price": -(10**16)}]}),
            "properties.items.price: -10000000000000000 is beyond ±1e15 (send a larger integer as a string)",
        ),
        (
            event_line(occurred_at="9999-12-31T23:59:59Z"),
            "occurred_at: 9999-12-31T23:59:59 is more than 24 h in the future",
        ),
        (
            event_line(occurred_at="2026-06-02T09:00:01Z"),
            "occurred_at: 2026-06-02T09:00:01 is more than 24 h in the future",
        ),
        (event_line(occurred_at="1899-12-31T23:59:59Z"), "occurred_at: 1899-12-31T23:59:59 is before 1900-01-01"),
        (
            '{"customer_id": "c1", "type": "purchase", "occurred_at": "2026-05-01T10:00:00Z", '
            '"properties": {"name": "\\ud800"}}',
            "properties.name: contains a lone surrogate (\\ud800-\\udfff), which is not text",
        ),
        (
            '{"customer_id": "c1\\udfff", "type": "purchase", "occurred_at": "2026-05-01T10:00:00Z"}',
            "customer_id: contains a lone surrogate (\\ud800-\\udfff), which is not text",
        ),
        (
            event_line(properties={"a\x00b": 1}),
            "properties: key 'a\\x00b': contains a NUL character (\\0), which the store cannot keep",
        ),
        (
            event_line(properties={"line\nbreak": 10**16}),  # one line per problem, whatever the name
            "properties.'line\\nbreak': 10000000000000000 is beyond ±1e15 (send a larger integer as a string)",
        ),
        (
            event_line(properties={"deep": json.loads("[" * 40 + "]" * 40)}),
            "properties.deep: nested more than 32 levels deep",
        ),
    ],
)
def test_an_event_value_the_stores_cannot_keep_or_read_back(shop, tmp_path, line, message):
    file = jsonl(tmp_path / "e.jsonl", json.dumps(EVENT), line)
    assert problems(shop, "events", file) == [f"2: {message}"]


def test_an_event_up_to_24_hours_ahead_is_kept(shop, tmp_path):
    file = jsonl(tmp_path / "e.jsonl", event_line(occurred_at="2026-06-02T09:00:00Z"))
    assert import_file(shop, "events", file, now=NOW).written == 1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"id": "c2", "signed_up_at": "9999-12-31T23:59:59Z"},
            "signed_up_at: 9999-12-31T23:59:59 is after the year 2200",
        ),
        ({"id": "c2", "unsubscribed_at": "1800-01-01"}, "unsubscribed_at: 1800-01-01T00:00:00 is before 1900-01-01"),
        ({"id": "c2", "birthday": "0001-01-01"}, "birthday: 0001-01-01 is outside the years 1900-2200"),
        ({"id": "c2", "attributes": {"ltv": 1e300}}, "attributes.ltv: 1e+300 is beyond ±1e15"),
        (
            {"id": "c2", "score": 10**20},
            "score: an integer of 21 digits is beyond ±1e15 (send a larger integer as a string)",
        ),
    ],
)
def test_a_customer_value_out_of_range(shop, tmp_path, row, message):
    file = jsonl(tmp_path / "c.jsonl", json.dumps(row))
    assert problems(shop, "customers", file) == [f"1: {message}"]


def test_csv_numbers_beyond_the_range_stay_text(shop, tmp_path):
    file = tmp_path / "e.csv"
    huge = "9" * 400 + ".5"
    file.write_text(f"customer_id,type,occurred_at,amount,order\nc1,purchase,2026-05-01,{huge},1000000000000001\n")
    assert import_file(shop, "events", file, now=NOW).written == 1
    with shop.engine.connect() as conn:
        assert conn.execute(sa.select(events.c.properties)).scalar_one() == {
            "amount": huge,
            "order": "1000000000000001",
        }
