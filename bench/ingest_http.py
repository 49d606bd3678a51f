"""Events over HTTP against the same events from a file, in one run and one store.

The HTTP side: `nudge serve` as it runs in production (gunicorn, two worker processes) takes
`/v1/batch` requests of 500 events from four keep-alive connections at once, as a site's
collectors would; so do werkzeug's development server (`--dev`, what it replaced) and one gunicorn
worker, before it, each with ids of its own. The reference: the same events (new ids) written to
a CSV file and loaded by nudge's importer, what `nudge import events FILE` does, timed without the
command's start-up and apart from the statistics refresh that follows every import (a read of the
whole table, as long for one event as for 50,000). The ratio is the HTTP path's rate over the
file's (issue 25's target: ≥ 0.6).

python -m bench.ingest_http import WORKSPACE FILE   → the file import, timed in its own process
"""

from __future__ import annotations

import base64
import csv
import http.client
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
HTTP_EVENTS = 50_000  # bounded: at most this many events, at most HTTP_SECONDS
HTTP_SECONDS = 60
HTTP_BATCH = 500
CONNECTIONS = 4  # senders at once: both workers, and the threads in each, have work
PROPERTIES = ("category", "product_name", "product_id")


def _rows(events_file: Path) -> list[dict[str, str]]:
    with events_file.open(newline="") as handle:
        return list(itertools.islice(csv.DictReader(handle), HTTP_EVENTS))


def _message(row: dict[str, str], prefix: str) -> dict:
    properties: dict = {k: row[k] for k in PROPERTIES if row.get(k)}
    if row["amount"]:
        properties["amount"] = float(row["amount"])
    if row["score"]:
        properties["score"] = int(row["score"])
    return {
        "type": "track",
        "userId": row["customer_id"],
        "event": row["type"],
        "messageId": f"{prefix}-{row['id']}",  # new ids: the bench's import stored the originals
        "timestamp": row["occurred_at"],
        "properties": properties,
    }


def _write_reference(rows: list[dict[str, str]], target: Path) -> Path:
    """The same events as a CSV file nudge imports, ids of their own."""
    columns = ["id", "customer_id", "type", "occurred_at", "amount", "score", *PROPERTIES]
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**row, "id": "file-" + row["id"]} for row in rows)
    return target


def _post_all(port: int, bodies: list[bytes]) -> tuple[int, float]:
    """Every body posted once over CONNECTIONS keep-alive connections: (events stored, seconds)."""
    headers = {"Authorization": "Basic " + base64.b64encode(b"bench:").decode(), "Content-Type": "application/json"}
    queue, lock, stored, failed = iter(bodies), threading.Lock(), [0], []
    deadline = time.perf_counter() + HTTP_SECONDS

    def sender() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.perf_counter() < deadline:
            with lock:
                body = next(queue, None)
            if body is None:
                break
            connection.request("POST", "/v1/batch", body=body, headers=headers)
            reply = connection.getresponse()
            answer = json.loads(reply.read())
            if reply.status != 200:
                failed.append(answer)
                break
            with lock:
                stored[0] += answer["events"]
        connection.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=sender) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise SystemExit(f"nudge serve refused a batch: {failed[0]}")
    return stored[0], time.perf_counter() - start


def _start(ws: Path, port: int, options: tuple[str, ...], log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "engine", "--workspace", str(ws), "serve", "--port", str(port), *options]
    env = {**os.environ, "BENCH_WRITE_KEY": "bench", "NUDGE_SECRET": "bench"}
    with log.open("wb") as stderr:  # a file: a full pipe would stall the server
        server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            time.sleep(1)  # every worker booted, not only the first to answer
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit(f"nudge serve did not start:\n{log.read_text()[-3000:]}")


def post_over_http(ws: Path, messages: list[dict], options: tuple[str, ...]) -> dict:
    """The messages posted to `nudge serve OPTIONS` started on ws: events/s."""
    from tests.support.pgserver import free_port

    config = yaml.safe_load((ws / "config.yaml").read_text())
    (ws / "config.yaml").write_text(yaml.safe_dump({**config, "ingest": {"write_key_env": "BENCH_WRITE_KEY"}}))
    bodies = [  # encoded before the clock starts: the sender's JSON is not nudge's cost
        json.dumps({"batch": messages[offset : offset + HTTP_BATCH]}).encode()
        for offset in range(0, len(messages), HTTP_BATCH)
    ]
    port, log = free_port(), ws / "serve-bench.log"
    server = _start(ws, port, options, log)
    try:
        sent, seconds = _post_all(port, bodies)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        (ws / "config.yaml").write_text(yaml.safe_dump(config))
    return {"events": sent, "seconds": seconds, "events_per_second": sent / seconds, "server": " ".join(options)}


# The server as it runs in production last: its figures are the table's. The others are what it
# replaces (werkzeug's development server) and one worker, for the ratios between them.
SERVERS = (("werkzeug", ("--dev",)), ("gunicorn-1", ("--workers", "1")), ("gunicorn-2", ("--workers", "2")))


def measure(ws: Path, events_file: Path) -> dict:
    """HTTP ingestion on each server (the same events, ids of each server's own), then the same
    events from a file, and the ratios."""
    rows = _rows(events_file)
    servers = {name: post_over_http(ws, [_message(row, name) for row in rows], options) for name, options in SERVERS}
    found = {**servers["gunicorn-2"], "servers": servers}
    reference = _write_reference(rows, ws / "bench-same-events.csv")
    done = subprocess.run(
        [sys.executable, "-m", "bench.ingest_http", "import", str(ws), str(reference)], cwd=ROOT, capture_output=True
    )
    if done.returncode != 0:
        raise SystemExit(f"the file import failed:\n{done.stderr.decode()[-3000:]}")
    found["file_import"] = json.loads(done.stdout)
    found["ratio_to_file_import"] = found["events_per_second"] / found["file_import"]["events_per_second"]
    for result in servers.values():
        result["ratio_to_file_import"] = result["events_per_second"] / found["file_import"]["events_per_second"]
    return found


def import_events(root: str, file: str) -> dict:
    """`nudge import events FILE` without the command's start-up: the importer, timed."""
    from datetime import datetime, timezone

    from engine.ingest.importer import import_file
    from engine.rules.config import load_config, resolve_store_url
    from engine.store import open_store

    store = open_store(resolve_store_url(load_config(Path(root)), Path(root)), create=False)
    refresh = store.analyze
    statistics = [0.0]

    def timed_refresh(*args, **kwargs) -> None:  # the whole table's statistics, after every import
        started = time.perf_counter()
        refresh(*args, **kwargs)
        statistics[0] += time.perf_counter() - started

    store.analyze = timed_refresh  # type: ignore[method-assign]
    start = time.perf_counter()
    result = import_file(store, "events", Path(file), now=datetime.now(timezone.utc))
    seconds = time.perf_counter() - start
    rows = seconds - statistics[0]
    return {
        "events": result.written,
        "seconds": seconds,
        "statistics_seconds": statistics[0],
        # The floor: writing the rows. The statistics refresh costs the same for 1 event as for
        # 50,000 (it reads the whole table); the HTTP path never runs it.
        "events_per_second": result.written / rows,
        "events_per_second_with_statistics": result.written / seconds,
    }


def table_rows(row, number) -> None:
    """The report's lines: HTTP ingestion, the same events from a file, and their ratio."""
    row(
        "ingest over HTTP (gunicorn, 2 workers, /v1/batch): events/s",
        lambda d: number(d["ingest_http"]["events_per_second"], 0),
    )
    row(
        "reference: the same events from a file (import, rows): events/s",
        lambda d: number(d["ingest_http"]["file_import"]["events_per_second"], 0),
    )
    for name, label in (("werkzeug", "werkzeug's development server"), ("gunicorn-1", "gunicorn, 1 worker")):
        row(
            f"ingest over HTTP, {label}: events/s",
            lambda d, n=name: number(d["ingest_http"]["servers"][n]["events_per_second"], 0),
        )
    row("ratio HTTP ingest / file import (target >= 0.6)", lambda d: number(d["ingest_http"]["ratio_to_file_import"]))
    row(
        "ratio HTTP ingest / first bulk import",
        lambda d: number(d["ingest_http"]["events_per_second"] / d["import"]["events_per_second"]),
    )


if __name__ == "__main__":
    _, name, *args = sys.argv
    if name != "import":
        raise SystemExit(__doc__)
    json.dump(import_events(*args), sys.stdout)
