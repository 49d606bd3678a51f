"""`nudge import`: upserts, deduplication, all-or-nothing with every bad row located, --skip-invalid."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.core.errors import UserInputError
from engine.ingest.importer import import_file
from engine.store.tables import customers, events
from tests.support.store import NOW


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def count(store, table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def customer(store, cid: str):
    with store.engine.connect() as conn:
        return conn.execute(sa.select(customers).where(customers.c.id == cid)).one()


CUSTOMERS_CSV = """id,email,first_name,birthday,country,timezone,signed_up_at,email_opt_in,loyalty_points,zip
c1,Ann@Example.com,Ann,1990-02-14,us,America/New_York,2024-01-05T10:00:00+02:00,yes,120,01234
c2,bob@example.com,Bob,--02-29,CN,,2024-03-01,0,,
"""


def test_customers_csv_types_and_custom_attributes(store, tmp_path):
    result = import_file(store, "customers", write(tmp_path / "c.csv", CUSTOMERS_CSV), now=NOW)
    assert (result.read, result.written, result.rejected) == (2, 2, [])
    ann = customer(store, "c1")
    assert ann.email == "ann@example.com" and ann.country == "US" and ann.email_opt_in is True
    assert ann.signed_up_at == datetime(2024, 1, 5, 8, 0)  # stored as UTC
    assert (ann.birth_month, ann.birth_day) == (2, 14)
    assert ann.attributes == {"loyalty_points": 120, "zip": "01234"}  # numbers typed, zip codes kept
    bob = customer(store, "c2")
    assert bob.timezone is None and bob.email_opt_in is False and bob.birthday == "--02-29"


def test_customers_are_upserted_and_only_given_fields_change(store, tmp_path):
    import_file(store, "customers", write(tmp_path / "c.csv", CUSTOMERS_CSV), now=NOW)
    update = tmp_path / "u.jsonl"
    write(update, json.dumps({"id": "c1", "city": "Boston", "attributes": {"tier": "gold"}}) + "\n")
    import_file(store, "customers", update, now=NOW)
    ann = customer(store, "c1")
    assert ann.city == "Boston" and ann.first_name == "Ann" and ann.email_opt_in is True
    assert ann.attributes == {"loyalty_points": 120, "zip": "01234", "tier": "gold"}
    assert count(store, customers) == 2


EVENTS_JSONL = (
    "\n".join(
        json.dumps(row)
        for row in [
            {
                "id": "e1",
                "customer_id": "c1",
                "type": "purchase",
                "occurred_at": "2026-05-01T10:00:00Z",
                "properties": {"amount": 99.5, "order_id": "o1"},
            },
            {
                "customer_id": "c1",
                "type": "product_view",
                "occurred_at": "2026-05-01T09:00:00",
                "properties": {"product_name": "Boots"},
            },
            {
                "customer_id": "c1",
                "type": "product_view",
                "occurred_at": "2026-05-01T09:00:00",
                "properties": {"product_name": "Boots"},
            },  # identical row: stored once
        ]
    )
    + "\n"
)


def test_events_are_deduplicated_across_and_within_imports(store, tmp_path):
    import_file(store, "customers", write(tmp_path / "c.csv", CUSTOMERS_CSV), now=NOW)
    file = write(tmp_path / "e.jsonl", EVENTS_JSONL)
    first = import_file(store, "events", file, now=NOW)
    again = import_file(store, "events", file, now=NOW)  # re-import: no-op
    assert (first.read, first.written, again.written) == (3, 2, 0)
    assert count(store, events) == 2


def test_events_csv_extra_columns_become_properties(store, tmp_path):
    import_file(store, "customers", write(tmp_path / "c.csv", CUSTOMERS_CSV), now=NOW)
    write(
        tmp_path / "e.csv",
        "customer_id,type,occurred_at,amount,category\nc2,purchase,2026-05-02T00:00:00Z,12.50,shoes\n",
    )
    import_file(store, "events", tmp_path / "e.csv", now=NOW)
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(events)).one()
    assert row.properties == {"amount": 12.5, "category": "shoes"}


BAD_CUSTOMERS = """id,email,birthday,country,timezone,email_opt_in
ok1,ok@example.com,1990-01-01,US,Europe/Paris,true
,nobody@example.com,,,,
bad2,not-an-email,1990-13-01,USA,Mars/Base,perhaps
ok3,ok3@example.com,,,,
"""


def test_a_bad_file_is_rejected_whole_with_every_bad_row(store, tmp_path):
    file = write(tmp_path / "bad.csv", BAD_CUSTOMERS)
    with pytest.raises(UserInputError) as caught:
        import_file(store, "customers", file, now=NOW)
    lines = [str(p) for p in caught.value.problems]
    assert lines == [f"{file}:3: error: id: required", f"{file}:4: error: email: not an email address: 'not-an-email'"]
    assert count(store, customers) == 0  # nothing half-written


def test_skip_invalid_loads_the_rest_and_reports_rejects(store, tmp_path):
    file = write(tmp_path / "bad.csv", BAD_CUSTOMERS)
    result = import_file(store, "customers", file, now=NOW, skip_invalid=True)
    assert [p.line for p in result.rejected] == [3, 4]
    assert count(store, customers) == 2


def test_events_for_unknown_customers_and_malformed_lines_are_rejected(store, tmp_path):
    import_file(store, "customers", write(tmp_path / "c.csv", CUSTOMERS_CSV), now=NOW)
    file = write(
        tmp_path / "e.jsonl",
        "\n".join(
            [
                json.dumps({"customer_id": "c1", "type": "purchase", "occurred_at": "2026-05-01T10:00:00Z"}),
                json.dumps({"customer_id": "ghost", "type": "purchase", "occurred_at": "2026-05-01T10:00:00Z"}),
                "{not json",
                json.dumps({"customer_id": "c1", "type": "purchase", "occurred_at": "yesterday"}),
                json.dumps({"customer_id": "c1", "occurred_at": "2026-05-01T10:00:00Z"}),
            ]
        )
        + "\n",
    )
    with pytest.raises(UserInputError) as caught:
        import_file(store, "events", file, now=NOW)
    assert [(p.line, p.message.split(":")[0]) for p in caught.value.problems] == [
        (2, "customer_id"),
        (3, "invalid JSON"),
        (4, "occurred_at"),
        (5, "type"),
    ]
    assert count(store, events) == 0


def test_unsupported_extension_and_missing_file(store, tmp_path):
    with pytest.raises(UserInputError, match="unsupported file type"):
        import_file(store, "customers", write(tmp_path / "c.xlsx", ""), now=NOW)
    with pytest.raises(UserInputError, match="file not found"):
        import_file(store, "customers", tmp_path / "absent.csv", now=NOW)


def test_large_files_stream_in_batches(sqlite_store, tmp_path):
    from engine.ingest import importer

    rows = "".join(f"c{i},c{i}@example.com\n" for i in range(12_000))
    file = write(tmp_path / "many.csv", "id,email\n" + rows)
    result = importer.import_file(sqlite_store, "customers", file, now=NOW)
    assert result.written == 12_000 and count(sqlite_store, customers) == 12_000
