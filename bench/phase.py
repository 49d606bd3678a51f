"""One benchmark phase in its own process, so its time and peak memory are its own.

python -m bench.phase NAME WORKSPACE [ARGS...]   → one JSON object on stdout
"""

from __future__ import annotations

import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path


def _hwm_mb(pid: int | str = "self") -> float | None:
    """Peak resident memory of one process (VmHWM). Unlike ru_maxrss, it starts afresh at exec:
    a child's ru_maxrss starts at the size of the parent that forked it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def _peak_mb() -> float:
    found = _hwm_mb()
    return found if found is not None else round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _digest(ids) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


def _workspace(root: str):
    from engine.rules.config import resolve_store_url
    from engine.store import open_store
    from engine.workspace.loader import load_workspace

    ws = load_workspace(Path(root))
    return ws, open_store(resolve_store_url(ws.config, ws.root), create=False)


def do_import(root: str, customers_file: str, events_file: str) -> dict:
    from engine.ingest.importer import import_file
    from engine.ingest.products import import_products
    from engine.rules.config import load_config, resolve_store_url
    from engine.store import open_store

    config = load_config(Path(root))
    store = open_store(resolve_store_url(config, Path(root)), create=True)
    now = datetime.fromisoformat("2026-06-01T09:00:00+00:00")
    start = time.perf_counter()
    people = import_file(store, "customers", Path(customers_file), now=now)
    middle = time.perf_counter()
    history = import_file(store, "events", Path(events_file), now=now)
    end = time.perf_counter()
    catalogue = Path(events_file).with_name("products.csv")  # the generator writes it beside them
    shelf = import_products(store, catalogue, now=now) if catalogue.is_file() else None
    return {
        "products": shelf.written if shelf else 0,
        "customers": people.written,
        "customer_seconds": middle - start,
        "events": history.written,
        "event_seconds": end - middle,
        "events_per_second": history.written / (end - middle),
        "peak_rss_mb": _peak_mb(),
    }


def do_engine(root: str, at: str) -> dict:
    """The four campaigns through nudge's planner, in process (no CLI start-up)."""
    from engine.audience.planner import Planner

    ws, store = _workspace(root)
    moment = datetime.fromisoformat(at)
    start = time.perf_counter()
    found = {}
    with store.engine.connect() as conn:
        planner = Planner(conn=conn, config=ws.config, segments=ws.segments, at=moment)
        for campaign in ws.select():
            plan = planner.plan(campaign)
            found[campaign.campaign] = {
                "ids": _digest(plan.targeted + plan.held_out),
                "count": len(plan.targeted) + len(plan.held_out),
            }
    return {"seconds": time.perf_counter() - start, "campaigns": found, "peak_rss_mb": _peak_mb()}


def do_hand(root: str, at: str) -> dict:
    from bench.handsql import queries

    ws, store = _workspace(root)
    moment = datetime.fromisoformat(at)
    found, start = {}, time.perf_counter()
    with store.engine.connect() as conn:
        for name, (sql, params) in queries(conn, moment, ws.config.timezone).items():
            ids = [row[0] for row in conn.execution_options(yield_per=10_000).execute(sql, params)]
            found[name] = {"ids": _digest(ids), "count": len(ids)}
    return {"seconds": time.perf_counter() - start, "campaigns": found, "peak_rss_mb": _peak_mb()}


def _timed_peer(evaluate, root: str, at: str) -> dict:
    ws, store = _workspace(root)
    start = time.perf_counter()
    found = evaluate(store, ws, datetime.fromisoformat(at))
    return {
        "seconds": time.perf_counter() - start,
        "campaigns": {k: {"ids": _digest(v), "count": len(v)} for k, v in found.items()},
        "peak_rss_mb": _peak_mb(),
    }


def do_peer(root: str, at: str) -> dict:
    """The deliberately naive per-customer Python engine (the test oracle's way)."""
    from bench.peer import evaluate

    return _timed_peer(evaluate, root, at)


def do_pandas(root: str, at: str) -> dict:
    """The pandas script an analyst would write."""
    from bench.peer_pandas import evaluate

    return _timed_peer(evaluate, root, at)


def do_command(*command: str) -> dict:
    """Run a command (as a user would), report its wall time and its own peak memory."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(list(command), stdout=out, stderr=err)
        peak = 0.0
        while child.poll() is None:  # VmHWM only grows: the last reading before exit is the peak
            peak = max(peak, _hwm_mb(child.pid) or 0.0)
            time.sleep(0.005)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        return {"error": stderr.decode()[-2000:], "returncode": child.returncode}
    return {"seconds": seconds, "peak_rss_mb": peak, "stdout": stdout.decode()[-20_000_000:]}


def do_files(directory: str, count: str, size: str, fsync: str = "0") -> dict:
    """The file system's own speed, the outbox's reference: `count` files of `size` bytes, each
    written under a temporary name and renamed into place, one after another, as the outbox does;
    with fsync "1", each file flushed before its rename and the folder once at the end, as the
    outbox does by default."""
    import os
    import shutil

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    data, total, durable = os.urandom(int(size)), int(count), fsync == "1"
    start = time.perf_counter()
    for n in range(total):
        temporary = folder / f"{n:012d}.tmp"
        with open(temporary, "wb") as file:
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, folder / f"{n:012d}.eml")
    if durable:
        descriptor = os.open(folder, os.O_RDONLY)
        os.fsync(descriptor)
        os.close(descriptor)
    seconds = time.perf_counter() - start
    shutil.rmtree(folder)
    return {"files": total, "bytes": int(size), "seconds": seconds, "files_per_second": total / seconds}


SINK_SECONDS = 60.0


def do_sink(host: str, count: str, api_key: str, size: str) -> dict:
    """The SendGrid sink's own speed, the delivery's reference: up to `count` one-recipient
    requests of about `size` bytes over 8 keep-alive connections (as nudge's connector uses), from
    the fastest bare client we have (bench/sink_client.py), for at most a minute."""
    from bench.sink_client import blast

    return blast(host, int(count), api_key, int(size), SINK_SECONDS)


PHASES = {
    "import": do_import,
    "engine": do_engine,
    "hand": do_hand,
    "peer": do_peer,
    "pandas": do_pandas,
    "command": do_command,
    "files": do_files,
    "sink": do_sink,
}

if __name__ == "__main__":
    name, *args = sys.argv[1:]
    json.dump(PHASES[name](*args), sys.stdout)
