"""Delivery against the machine's own floor (issue 25), all in one run.

The floor: the bench blast's emails made and written in a bare Python loop, one process, no
ledger — the customers read once, then per message the same campaign rendered through nudge's
Jinja environment (body with its CSS inlined, subject, text part: render_actions), nudge's own
message assembly and MIME writer, and the outbox's own file write (FileOutbox.send, one batch of
`delivery.batch_size` at a time: a file flushed to disk each, the folder once a batch — the same
fsync policy as the outbox compared). Capped at FLOOR_CAP messages.

Then `nudge run bench-blast` into an outbox folder beside the floor's, with `delivery.workers: 1`
and `2`, each at an occurrence of its own (best of `runs`, alternating), and the ratios the issue
targets: one worker ≥ 0.7× the floor, two workers ≥ 1.6× one worker.

The floor times its loop only (customers read, workspace loaded before the clock starts), so beside
the whole run (start-up, planning, dispatch) nudge's dispatch phase is compared on its own, from
the times `nudge run --format json` reports per phase. On a shared, loaded machine wall time says
more about the neighbours than about the code, so both sides' CPU (user + system) per message is
compared too: the floor's loop in this process, nudge's dispatch phase (its workers included) and
its whole process (RUSAGE_CHILDREN of this process around the run).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import yaml

from .generate import DELIVERY_BUCKETS

FLOOR_CAP = 50_000  # the floor's speed is flat long before this; bounded time at scale 1m
CAMPAIGN = "bench-blast"
FIRST_MINUTE = 20  # occurrences of their own: other bench phases use minutes 1–7 of the bench's AT
ROOT = Path(__file__).resolve().parent.parent


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (and theirs, when they were waited for)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _customers(ws: Path, cap: int) -> list[dict]:
    """The blast's audience (attributes.bucket < DELIVERY_BUCKETS, as BLAST says, with email consent; no holdout,
    suppression or cooldown here), read once as nudge reads customers."""
    import sqlalchemy as sa

    from engine.messages.context import load_customers
    from engine.store import open_store
    from engine.store.tables import customers
    from engine.workspace.loader import load_workspace

    workspace = load_workspace(ws)
    store = open_store(workspace.config.store, create=False, read_only=True)
    with store.engine.connect() as conn:
        bucket = customers.c.attributes["bucket"].as_integer()
        query = sa.select(customers.c.id).where(
            customers.c.email.is_not(None), customers.c.email_opt_in, bucket < DELIVERY_BUCKETS
        )
        ids = list(conn.execute(query.order_by(customers.c.id).limit(cap)).scalars())
        people = load_customers(conn, ids)
    store.dispose()
    return [people[i] for i in ids if i in people]


def floor(ws: Path, at: str, outbox: Path, cap: int = FLOOR_CAP) -> dict:
    """Messages a second for the bare loop (customers read before the clock starts)."""
    from connectors.email.outbox import OutboxConnector
    from engine.messages.actions import render_actions
    from engine.messages.coupons import new_code
    from engine.messages.email import build_email, links
    from engine.messages.unsubscribe import secret_from, sign
    from engine.workspace.loader import load_workspace

    workspace = load_workspace(ws)
    config = workspace.config
    campaign = workspace.campaigns[CAMPAIGN].campaign
    env = workspace.environment()
    secret = secret_from(os.environ, ws, required=False)
    people = _customers(ws, cap)
    moment = datetime.fromisoformat(at)
    info = {"name": campaign.campaign, "description": campaign.description, "priority": campaign.priority}
    shutil.rmtree(outbox, ignore_errors=True)
    connector = OutboxConnector(outbox, fsync=config.email.outbox.fsync)
    size = config.delivery.batch_size
    started, cpu = time.perf_counter(), time.process_time()
    batch = []
    for number, customer in enumerate(people, start=1):
        token = sign(secret, customer["id"], customer["email"], campaign.campaign, moment)
        context = {
            "customer": customer,
            "campaign": info,
            "coupons": {"promo": {"code": new_code("BENCH")}},
            "at": moment,
            **links(config.email.unsubscribe_base, token),
        }
        rendered = render_actions(env, campaign, context, default_sender=config.email.from_)
        for mail in rendered.emails:
            batch.append(
                build_email(
                    delivery_id=number,
                    sender=mail.sender,
                    to=customer["email"],
                    subject=mail.subject,
                    body=mail.body,
                    is_html=mail.is_html,
                    unsubscribe_url=context["unsubscribe_url"],
                    campaign=campaign.campaign,
                )
            )
        if len(batch) >= size:
            connector.send(batch)
            batch = []
    if batch:
        connector.send(batch)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    written = sum(1 for _ in outbox.glob("*.eml"))
    shutil.rmtree(outbox, ignore_errors=True)
    return {
        "messages": written,
        "seconds": seconds,
        "messages_per_second": written / seconds,
        "cpu_seconds": cpu,
        "cpu_ms_per_message": 1000 * cpu / written,
        "fsync": connector.fsync,
    }


def run_nudge(ws: Path, at: str) -> dict:
    """`nudge run bench-blast --format json` as a user runs it: the whole run's wall and CPU, and
    its dispatch phase's (the part the floor's loop does) from the times nudge reports."""
    cpu, started = _children_cpu(), time.perf_counter()
    command = [sys.executable, "-m", "engine", "--workspace", str(ws), "run", CAMPAIGN, "--at", at, "--format", "json"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True)
    seconds, cpu = time.perf_counter() - started, _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"nudge run failed:\n{done.stderr.decode()[-3000:]}")
    found = next(o for o in json.loads(done.stdout)["occurrences"] if o["campaign"] == CAMPAIGN)
    sent, dispatch, dispatch_cpu = found["sent"], found["seconds"]["dispatch"], found["cpu_seconds"]["dispatch"]
    return {
        "sent": sent,
        "not_sent": found["failed"] + found["unknown"],
        "seconds": seconds,
        "messages_per_second": sent / seconds,
        "cpu_ms_per_message": 1000 * cpu / sent,
        "phases": {"seconds": found["seconds"], "cpu_seconds": found["cpu_seconds"]},
        "dispatch_messages_per_second": sent / dispatch,
        "dispatch_cpu_ms_per_message": 1000 * dispatch_cpu / sent,
    }


def _configure(ws: Path, outbox: Path, workers: int) -> None:
    """The bench workspace's config.yaml, sending into `outbox` with `workers` dispatch processes."""
    path = ws / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["email"] = {**config.get("email", {}), "connector": "outbox", "outbox": {"dir": str(outbox)}}
    config["delivery"] = {**config.get("delivery", {}), "workers": workers}
    path.write_text(yaml.safe_dump(config))


def measure(
    ws: Path, at: str, url: str, deliver: Callable[..., dict] | None = None, runs: int = 2, folder: Path | None = None
) -> dict:
    """The floor, then nudge with one and two workers into outboxes in `folder` (default: beside
    the workspace, on its disk); leaves the config with one worker and the outbox in `folder`.
    `url` and `deliver` are no longer read (run_nudge takes the counts and phase times from nudge's
    own JSON, which the bench's deliver() drops); kept so callers need not change at once."""
    folder = folder or ws
    original = (ws / "config.yaml").read_text()
    found: dict = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    _configure(ws, folder / "floor-outbox", 1)
    print("[delivery floor] the bare loop", file=sys.stderr)
    found["floor"] = floor(ws, at, folder / "floor-outbox")
    results: dict[int, list[dict]] = {1: [], 2: []}
    minute = FIRST_MINUTE
    for _ in range(runs):
        for workers in (1, 2):
            outbox = folder / f"floor-nudge-{minute}"
            _configure(ws, outbox, workers)
            print(f"[delivery floor] nudge run, {workers} worker(s)", file=sys.stderr)
            later = datetime.fromisoformat(at).replace(minute=minute).isoformat()
            results[workers].append(run_nudge(ws, later))
            shutil.rmtree(outbox, ignore_errors=True)
            minute += 1
    (ws / "config.yaml").write_text(original)
    found.update(_ratios(found["floor"], results), runs={str(w): r for w, r in results.items()})
    found["load_after"] = os.getloadavg()[0]
    return found


def _ratios(floor_found: dict, results: dict[int, list[dict]]) -> dict:
    """Best of the runs for each measure; ratios > 1 mean nudge is faster (or cheaper) than the
    floor. CPU per message is the fairer ratio on a loaded machine, dispatch the fairer scope."""

    def best(workers: int, key: str, pick: Callable[..., float] = max) -> float:
        return pick(r[key] for r in results[workers])

    floor_rate, floor_cpu = floor_found["messages_per_second"], floor_found["cpu_ms_per_message"]
    return {
        "one_worker": best(1, "messages_per_second"),
        "two_workers": best(2, "messages_per_second"),
        "ratio_one_worker_to_floor": best(1, "messages_per_second") / floor_rate,
        "ratio_two_workers_to_one": best(2, "messages_per_second") / best(1, "messages_per_second"),
        "dispatch_one_worker": best(1, "dispatch_messages_per_second"),
        "ratio_dispatch_one_worker_to_floor": best(1, "dispatch_messages_per_second") / floor_rate,
        "ratio_cpu_dispatch_one_worker_to_floor": floor_cpu / best(1, "dispatch_cpu_ms_per_message", min),
        "ratio_cpu_whole_run_one_worker_to_floor": floor_cpu / best(1, "cpu_ms_per_message", min),
    }


def table_rows(row, number) -> None:
    """The report's lines: the floor, nudge with one and two workers, the ratios against targets."""
    row(
        "delivery floor: bare loop msg/s (1 process)",
        lambda d: number(d["delivery_floor"]["floor"]["messages_per_second"], 0),
    )
    row("delivery: nudge run, 1 worker msg/s", lambda d: number(d["delivery_floor"]["one_worker"], 0))
    row("delivery: nudge run, 2 workers msg/s", lambda d: number(d["delivery_floor"]["two_workers"], 0))
    row(
        "ratio 1 worker / floor (target >= 0.7)",
        lambda d: number(d["delivery_floor"]["ratio_one_worker_to_floor"]),
    )
    row("ratio 2 workers / 1 worker (target >= 1.6)", lambda d: number(d["delivery_floor"]["ratio_two_workers_to_one"]))
    row(
        "ratio 1 worker's dispatch phase / floor, wall",
        lambda d: number(d["delivery_floor"]["ratio_dispatch_one_worker_to_floor"]),
    )
    row(
        "ratio CPU per message, floor / 1 worker's dispatch",
        lambda d: number(d["delivery_floor"]["ratio_cpu_dispatch_one_worker_to_floor"]),
    )
    row(
        "ratio CPU per message, floor / 1 worker's whole run",
        lambda d: number(d["delivery_floor"]["ratio_cpu_whole_run_one_worker_to_floor"]),
    )


def main() -> None:
    """python -m bench.delivery_floor --scale 100k [--db sqlite|postgresql]: generate, import, measure."""
    import argparse
    import json
    import tempfile

    from . import __main__ as bench
    from .generate import AT, generate, scale_to_int

    parser = argparse.ArgumentParser(prog="python -m bench.delivery_floor")
    parser.add_argument("--scale", default="100k")
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--memory", action="store_true", help="outboxes in /dev/shm instead of on disk")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nudge-bench-floor-"))
    server = None
    try:
        files = generate(scale_to_int(args.scale), work / "data")
        if args.db == "sqlite":
            url = f"sqlite:///{work / 'bench.db'}"
        else:
            from tests.support.pgserver import PgServer, create_database

            server = PgServer().start()
            url = create_database(server.url())
        ws = bench.workspace(work / "ws", url, bench.outbox_in(work / "ws" / "outbox"))
        print(f"importing {files[2]:,} events", file=sys.stderr)
        bench.phase("import", str(ws), str(files[0]), str(files[1]))
        folder = Path(tempfile.mkdtemp(prefix="nudge-floor-", dir="/dev/shm")) if args.memory else None
        try:
            result = measure(ws, AT.isoformat(), url, runs=args.runs, folder=folder)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        json.dump({"scale": args.scale, "database": args.db, "memory": args.memory, **result}, sys.stdout, indent=2)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
