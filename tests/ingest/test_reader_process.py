"""Large files are read and validated in a second process while the first writes: the store
ends up exactly as an in-process import leaves it, and a reader that dies loses nothing."""

from __future__ import annotations

import os
import signal
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from engine.core.errors import RuntimeFailure, UserInputError
from engine.ingest.bulk import stored_instant
from engine.ingest.importer import import_file
from engine.store import open_store
from engine.store.tables import customers, events
from tests.support.store import NOW


def _events_csv(path: Path, customers_count: int, per_customer: int) -> Path:
    lines = ["id,customer_id,type,occurred_at,amount,note"]
    for c in range(customers_count):
        for n in range(per_customer):
            amount = f"{(c * 7 + n) % 50}.5" if n % 3 == 0 else ""
            lines.append(f'e{c}-{n},c{c},purchase,2026-0{1 + n % 9}-1{n % 10}T0{n % 10}:30:00Z,{amount},"a, b"')
    lines.append("e0-0,c0,purchase,2026-01-10T00:30:00Z,,duplicate id: kept once")
    lines.append(",ghost,purchase,2026-01-10T00:30:00Z,,")
    lines.append(",c1,purchase,yesterday,,")
    lines.append(",c1,purchase,2026-10-02T00:00:01Z,,")  # more than 24 h after AFTER
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


AFTER = datetime(2026, 10, 1, tzinfo=timezone.utc)  # the files' events are before it


def _stored(store) -> list[tuple]:
    with store.engine.connect() as conn:
        query = sa.select(events.c.event_key, events.c.customer_id, events.c.occurred_at, events.c.properties)
        return [tuple(row) for row in conn.execute(query.order_by(events.c.event_key))]


def _customers(store, tmp_path: Path, count: int) -> None:
    file = tmp_path / "customers.csv"
    file.write_text("id,email\n" + "".join(f"c{i},c{i}@example.com\n" for i in range(count)), encoding="utf-8")
    import_file(store, "customers", file, now=NOW, reader_process=True)


def test_the_reader_process_stores_what_an_in_process_import_stores(store, tmp_path):
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}", create=True)
    try:
        for target in (store, other):
            _customers(target, tmp_path, 300)
        file = _events_csv(tmp_path / "events.csv", 300, 40)
        mine = import_file(store, "events", file, now=AFTER, reader_process=True, skip_invalid=True)
        theirs = import_file(other, "events", file, now=AFTER, reader_process=False, skip_invalid=True)
        assert (mine.read, mine.written) == (theirs.read, theirs.written) == (12_004, 12_000)
        assert [(p.line, p.message) for p in mine.rejected] == [(p.line, p.message) for p in theirs.rejected]
        assert [p.line for p in mine.rejected] == [12_003, 12_004, 12_005]  # ghost customer, bad time, future
        assert _stored(store) == _stored(other)
    finally:
        other.dispose()


def _reader_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"engine.ingest.reader_process" in command:
            found.append(int(entry.name))
    return found


def test_a_reader_killed_mid_import_fails_the_import_and_writes_nothing(store, tmp_path):
    _customers(store, tmp_path, 300)
    file = _events_csv(tmp_path / "events.csv", 300, 100)
    killed = []

    def kill_reader(read: int) -> None:
        if not killed:
            killed.extend(_reader_pids())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    with pytest.raises(RuntimeFailure, match=r"the process reading .*events\.csv stopped \(exit code -9\)"):
        import_file(store, "events", file, now=NOW, reader_process=True, on_progress=kill_reader)
    assert killed, "no reader process was found to kill"
    assert _stored(store) == []


def test_an_initial_load_builds_the_indexes_it_deferred(sqlite_store, tmp_path):
    def index_names() -> set[str]:
        with sqlite_store.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='events'")
            return {name for (name,) in rows if not name.startswith("sqlite_autoindex")}

    expected = {index.name for index in events.indexes}
    _customers(sqlite_store, tmp_path, 300)
    bad = _events_csv(tmp_path / "bad.csv", 300, 5)
    with pytest.raises(UserInputError):
        import_file(sqlite_store, "events", bad, now=NOW)
    assert index_names() == expected  # rolled back with the rows
    import_file(sqlite_store, "events", bad, now=NOW, skip_invalid=True)
    assert index_names() == expected
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        plan = conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT customer_id FROM events WHERE type='purchase' AND occurred_at > '2026-03-01'"
        ).fetchall()
    assert "ix_events_type_time" in str(plan)
    with sqlite_store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar() == 300


@pytest.mark.parametrize(
    "moment", [datetime(2026, 5, 1, 9, 30), datetime(1, 1, 1), datetime(999, 12, 31, 23, 59, 59, 999_999)]
)
def test_records_keep_times_as_sqlalchemy_does(moment):
    dialect = sqlite.dialect()
    processor = events.c.occurred_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert stored_instant(moment) == processor(moment)
