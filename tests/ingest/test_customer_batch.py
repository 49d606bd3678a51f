"""The consent log at import, on both databases: every change of email or SMS consent and of a
topic choice is logged with old and new value, channel, topic and the file it came from; a new
customer arriving opted in is a change; the same file again logs nothing; a batch is compared
with the store in one query, never one per row."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.core.errors import UserInputError
from engine.ingest import importer
from engine.ingest.contact import KnownTopics
from engine.ingest.importer import import_file
from engine.store import open_store
from engine.store.tables import consent_log, customers
from tests.support.pgserver import create_database
from tests.support.store import NOW

TOPICS = KnownTopics(("promotions", "newsletter"))

FIRST = """id,email,phone,country,email_opt_in,sms_opt_in,topics.promotions
c1,ann@example.com,138 0013 8000,CN,true,true,false
c2,bob@example.com,,US,false,,true
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def logged(store) -> list[tuple]:
    columns = ("customer_id", "channel", "topic", "change", "old_value", "new_value", "source", "address")
    with store.engine.connect() as conn:
        query = sa.select(*(consent_log.c[c] for c in columns)).order_by(consent_log.c.id)
        return [tuple(row) for row in conn.execute(query)]


def test_new_customers_log_what_they_arrive_with_and_a_reimport_logs_nothing(store, tmp_path):
    file = write(tmp_path / "customers.csv", FIRST)
    first = import_file(store, "customers", file, now=NOW, topics=TOPICS)
    source = "import customers.csv"
    assert set(logged(store)) == {
        ("c1", None, "promotions", "topic", "true", "false", source, None),
        ("c1", "email", None, "opt_in", "false", "true", source, "ann@example.com"),
        ("c1", "sms", None, "opt_in", "false", "true", source, "+8613800138000"),
    }  # Bob arrives with nothing agreed to and promotions as the default has it: nothing changed
    assert first.consent_logged == 3
    again = import_file(store, "customers", file, now=NOW, topics=TOPICS)
    assert again.consent_logged == 0 and len(logged(store)) == 3


def test_changes_are_logged_with_old_and_new_value_and_the_files_name(store, tmp_path):
    import_file(store, "customers", write(tmp_path / "customers.csv", FIRST), now=NOW, topics=TOPICS)
    later = write(
        tmp_path / "crm-export.jsonl",
        '{"id": "c1", "unsubscribed_at": "2026-05-31T08:00:00Z", "sms_unsubscribed_at": "2026-05-31T09:00:00+01:00"}\n'
        '{"id": "c2", "email_opt_in": true, "topics.promotions": false, "topics.newsletter": false}\n',
    )
    result = import_file(store, "customers", later, now=NOW, topics=TOPICS)
    source = "import crm-export.jsonl"
    assert set(logged(store)[3:]) == {
        ("c1", "email", None, "unsubscribe", None, "2026-05-31T08:00:00", source, "ann@example.com"),
        ("c1", "sms", None, "unsubscribe", None, "2026-05-31T08:00:00", source, "+8613800138000"),
        ("c2", None, "newsletter", "topic", "true", "false", source, None),
        ("c2", None, "promotions", "topic", "true", "false", source, None),
        ("c2", "email", None, "opt_in", "false", "true", source, "bob@example.com"),
    }
    assert result.consent_logged == 5
    with store.engine.connect() as conn:
        stamps = set(conn.execute(sa.select(consent_log.c.at)).scalars())
    assert stamps == {NOW.replace(tzinfo=None)}  # naive UTC, like every time in the store


def test_a_rejected_file_logs_nothing(store, tmp_path):
    bad = write(tmp_path / "bad.csv", FIRST + "c3,cat@example.com,12345,CN,true,,\n")
    with pytest.raises(UserInputError):
        import_file(store, "customers", bad, now=NOW, topics=TOPICS)
    assert logged(store) == []


def test_each_batch_is_compared_with_the_store_in_one_query(store, tmp_path, monkeypatch):
    header = "id,email,email_opt_in,topics.promotions\n"
    rows = "".join(f"c{i},c{i}@example.com,true,{'false' if i % 3 else ''}\n" for i in range(1200))
    import_file(store, "customers", write(tmp_path / "first.csv", header + rows), now=NOW, topics=TOPICS)
    monkeypatch.setattr(importer, "BATCH", 500)
    reads: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM customers" in statement:
            reads.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", note)
    try:
        changed = write(tmp_path / "second.csv", header + rows.replace(",true,", ",false,"))
        result = import_file(store, "customers", changed, now=NOW, topics=TOPICS)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", note)
    assert result.consent_logged == 1200  # every customer left email
    assert len(reads) == 3, reads  # 1,200 rows in batches of 500: one read per batch, none per row


def test_every_value_is_stored_as_written_whatever_characters_it_holds(store, tmp_path):
    # PostgreSQL loads a batch through COPY's text format, where a tab, a line break and a backslash
    # mean something: each must arrive as the character the file holds, in columns and attributes.
    odd = "tab\there, line\nbreak, back\\slash \\N \\t, 'quote\" €, 中文"
    file = write(
        tmp_path / "odd.jsonl",
        json.dumps({"id": "c\\1\t", "first_name": odd, "city": "\\N", "attributes": {"note": odd, "n": 1.5}}) + "\n",
    )
    import_file(store, "customers", file, now=NOW)
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(customers.c.id, customers.c.first_name, customers.c.city, customers.c.attributes))
        assert [tuple(r) for r in row] == [("c\\1", odd, "\\N", {"note": odd, "n": 1.5})]


def test_times_are_stored_in_utc_whatever_time_zone_the_postgresql_session_has(request, tmp_path):
    # The import instant arrives with its offset: stored as naive UTC (the store's one form), not
    # converted to the session's TimeZone as a timestamptz parameter assigned to a timestamp would be.
    url = create_database(request.getfixturevalue("pg_admin_url"))
    store = open_store(f"{url}?options=-c%20TimeZone%3DAsia%2FShanghai", create=True)
    try:
        file = write(tmp_path / "people.csv", "id,email_opt_in,signed_up_at\nc1,true,2026-05-01T08:00:00+02:00\n")
        import_file(store, "customers", file, now=NOW)
        with store.engine.connect() as conn:
            stored = conn.execute(sa.select(customers.c.updated_at, customers.c.signed_up_at)).one()
    finally:
        store.dispose()
    assert tuple(stored) == (NOW.replace(tzinfo=None), datetime(2026, 5, 1, 6, 0))
