"""Import against the database's bare floor, in the same run: nudge's own records (parsed by nudge
before any clock starts) written into a fresh copy of the schema with nothing else around them.

SQLite: the driver's `executemany` of a plain INSERT, on a connection set up as nudge's store sets
them up (WAL, foreign keys on, nudge's import cache size); the events table's secondary indexes
dropped first and built after, as nudge's bulk path does for an empty table. PostgreSQL: a plain
`COPY … FROM STDIN` straight into the tables, indexes in place (nudge keeps them on PostgreSQL).
Customers: the customer rows and the consent-log entries their opt-ins make (what nudge stores for
them). The records are built in chunks outside the clock, so the floor is the database's time
and the driver's, nothing of nudge's; memory stays that of one chunk.

Issue 25's target: nudge's rate ≥ 0.8 × the floor's, for events and for customers.

python -m bench.import_floor --scale 100k [--db sqlite|postgresql] → nudge's import, then the
floors, in one run: JSON on stdout, the table's lines on stderr.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 50_000
NOW = datetime.fromisoformat("2026-06-01T09:00:00+00:00")  # bench.phase.do_import's


def _parsed(kind: str, file: Path) -> Iterator[list[Any]]:
    """nudge's own parsed rows of the file, CHUNK at a time (the parser's work is not timed)."""
    from connectors.registry import source_for
    from engine.ingest.parsing import REQUIRED, ImportResult, batches, parse_rows

    reader = source_for(file)
    result = ImportResult(kind=kind)
    rows = parse_rows(reader.rows(file, REQUIRED[kind]), kind, reader.untyped, str(file), result, NOW)
    for batch in batches(rows, CHUNK):
        yield [row for _, row in batch]
    if result.rejected:
        raise SystemExit(f"the floor's file has rejected rows: {result.rejected[:3]}")


def _customer_records(rows: list[dict], columns: list[str], sqlite: bool, source: str) -> tuple[list, list]:
    """Customer rows as the table's values (SQLite: text times, 0/1, JSON text), and the consent
    entries nudge logs for them (every customer new: each opt-in is a change)."""
    from engine.core.clock import naive_utc
    from engine.ingest.bulk import stored_instant
    from engine.ingest.customer_batch import _changes

    stamp = naive_utc(NOW)

    def value(v: Any) -> Any:
        if isinstance(v, datetime):
            return stored_instant(naive_utc(v)) if sqlite else naive_utc(v)
        if isinstance(v, bool):
            return int(v) if sqlite else v
        if isinstance(v, dict):
            return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
        return v

    defaults = {"email_opt_in": False, "sms_opt_in": False, "updated_at": stamp}
    records = [tuple(value({**defaults, **row}.get(c)) for c in columns) for row in rows]
    at = stored_instant(stamp) if sqlite else stamp
    consent = [
        (e.customer_id, at, e.channel, e.topic, str(e.change), e.old, e.new, e.source, e.address)
        for e in _changes(rows, {}, source)
    ]
    return records, consent


class Floor:
    """Timed writes into one fresh store: the seconds spent inside the database's calls."""

    def __init__(self, url: str):
        from engine.ingest.importer import IMPORT_CACHE_KIB
        from engine.store import open_store

        self.store = open_store(url, create=True)
        self.sqlite = self.store.is_sqlite
        self.conn = self.store.engine.connect()
        self.raw: Any = self.conn.connection.driver_connection
        if self.sqlite:
            self.raw.execute(f"PRAGMA cache_size={IMPORT_CACHE_KIB}")
            self.raw.execute("BEGIN")
        self.seconds = 0.0

    def timed(self, work: Callable[[], Any]) -> None:
        start = time.perf_counter()
        work()
        self.seconds += time.perf_counter() - start

    def write(self, table: str, columns: list[str] | tuple[str, ...], records: list[tuple]) -> None:
        names = ", ".join(columns)
        if self.sqlite:
            marks = ", ".join("?" * len(columns))
            self.timed(lambda: self.raw.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", records))
            return

        def copy() -> None:
            with self.raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as stream:
                for record in records:
                    stream.write_row(record)

        self.timed(copy)

    def sql(self, statement: str) -> None:
        self.timed(lambda: self.raw.execute(statement))

    def commit(self) -> None:
        self.timed(self.raw.commit)
        if self.sqlite:
            self.raw.execute("BEGIN")

    def close(self) -> None:
        self.conn.close()
        self.store.engine.dispose()


def floors(url: str, customers_file: Path, events_file: Path) -> dict:
    """Customers, then events (their foreign key needs the customers), each in one transaction."""
    from engine.ingest.bulk import RECORD
    from engine.ingest.importer import imported_from
    from engine.store.tables import customers, events

    floor = Floor(url)
    source = imported_from(str(customers_file))
    columns: list[str] | None = None
    people = entries = 0
    for rows in _parsed("customers", customers_file):
        if columns is None:  # the file's columns, as the parser shaped them: every row names them all
            named = {key for row in rows for key in row} | {"email_opt_in", "sms_opt_in", "updated_at"}
            columns = [c.name for c in customers.columns if c.name in named]
        records, consent = _customer_records(rows, columns, floor.sqlite, source)
        floor.write("customers", columns, records)
        floor.write("consent_log", CONSENT, consent)
        people, entries = people + len(records), entries + len(consent)
    floor.commit()
    customer_seconds, floor.seconds = floor.seconds, 0.0
    deferred = [index for index in events.indexes if not index.unique] if floor.sqlite else []
    for index in deferred:  # as engine.ingest.bulk.indexes_deferred does for an empty table
        floor.sql(f"DROP INDEX {index.name}")
    count = 0
    for rows in _parsed("events", events_file):
        floor.write("events", RECORD, rows)
        count += len(rows)
    if floor.sqlite:
        from engine.ingest.bulk import SORT_CACHE_KIB

        floor.sql(f"PRAGMA cache_size={SORT_CACHE_KIB}")
    for index in deferred:
        floor.sql(str(sa.schema.CreateIndex(index).compile(dialect=floor.conn.dialect)))
    floor.commit()
    floor.close()
    return {
        "customers": people,
        "consent_entries": entries,
        "customer_seconds": customer_seconds,
        "customers_per_second": people / customer_seconds,
        "events": count,
        "event_seconds": floor.seconds,
        "events_per_second": count / floor.seconds,
    }


CONSENT = ("customer_id", "at", "channel", "topic", "change", "old_value", "new_value", "source", "address")


def _fresh_store(ws: Path, url: str) -> str:
    """An empty database beside nudge's: a new SQLite file, or a new PostgreSQL database."""
    if url.startswith("sqlite"):
        target = ws / "import-floor.db"
        for leftover in (target, target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            leftover.unlink(missing_ok=True)
        return f"sqlite:///{target}"
    from tests.support.pgserver import create_database

    return create_database(url.rsplit("/", 1)[0] + "/postgres")


def measure(ws: Path, files: tuple[Path, Path, int], url: str) -> dict:
    """The floors for the bench's files on the database at `url`, timed in a process of their own
    into a fresh copy of the schema."""
    fresh = _fresh_store(ws, url)
    done = subprocess.run(
        [sys.executable, "-m", "bench.import_floor", "floor", fresh, str(files[0]), str(files[1])],
        cwd=ROOT,
        capture_output=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the import floor failed:\n{done.stderr.decode()[-3000:]}")
    if fresh.startswith("sqlite:///"):
        Path(fresh[len("sqlite:///") :]).unlink(missing_ok=True)
    return json.loads(done.stdout)


def table_rows(row, _f) -> None:
    """The report's lines: nudge's import beside the floor, events and customers."""

    def rate(d: dict, kind: str) -> float:
        found = d["import"]
        return found[kind] / found["customer_seconds" if kind == "customers" else "event_seconds"]

    for kind, label in (("events", "events"), ("customers", "customers")):
        row(f"import {label}: nudge /s", lambda d, k=kind: _f(rate(d, k), 0))
        row(f"import {label}: bare floor /s", lambda d, k=kind: _f(d["import_floor"][f"{k}_per_second"], 0))
        row(
            f"ratio import {label} nudge / floor (target >= 0.8)",
            lambda d, k=kind: _f(rate(d, k) / d["import_floor"][f"{k}_per_second"]),
        )


def _standalone(argv: list[str]) -> None:
    from bench.__main__ import phase, workspace
    from bench.generate import generate, scale_to_int

    parser = argparse.ArgumentParser(prog="python -m bench.import_floor")
    parser.add_argument("--scale", default="100k")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--data", type=Path, help="a folder of generated files to reuse (made if missing)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nudge-import-floor-") as temporary:
        work = Path(temporary)
        data = args.data or work / "data"
        if (data / "customers.csv").is_file() and (data / "events.csv").is_file():
            files = (data / "customers.csv", data / "events.csv", 0)
        else:
            files = generate(scale_to_int(args.scale), data)
        server = None
        if args.db == "sqlite":
            url = f"sqlite:///{work / 'bench.db'}"
        else:
            from tests.support.pgserver import PgServer, create_database

            server = PgServer().start()
            url = create_database(server.url())
        try:
            ws = workspace(work / "ws", url, {"connector": "outbox", "outbox": {"dir": "outbox"}})
            found = {"database": args.db, "import": phase("import", str(ws), str(files[0]), str(files[1]))}
            found["import_floor"] = measure(ws, files, url)
        finally:
            if server is not None:
                server.stop()
    json.dump(found, sys.stdout, indent=2)
    lines: list[str] = []
    table_rows(lambda label, get: lines.append(f"{label:55} {get(found):>12}"), lambda v, d=2: f"{v:,.{d}f}")
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1:2] == ["floor"]:  # the timed child: floor URL CUSTOMERS EVENTS
        json.dump(floors(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])), sys.stdout)
    else:
        _standalone(sys.argv[1:])
